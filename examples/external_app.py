#!/usr/bin/env python3
"""An smsflow app written in Python: `shout`.

    shout hello   ->  HELLO
    shout         ->  To shout some text, send: SHOUT <ANYTHING>

smsflow's router writes every message meant for the app NAME to the topic
`sms.app.NAME`; the app answers on `sms.outbound`, and smsflow does the rest
(the outgoing phase, encoding, the backend). This program is such an app, and
the contract it follows holds for any language:

* Input: `sms.app.NAME`, read as a member of a consumer group (by default
  `smsflow.app:NAME`, the group smsflow's own stage for the app would use), so
  that several copies share the partitions.
* Records are Avro *single-object encoded*: the bytes C3 01, the 8-byte
  little-endian CRC-64-AVRO fingerprint of the schema's Parsing Canonical
  Form (as the Avro specification and fastavro compute it), then the Avro
  binary datum. Input is a `RoutedMessage`
  (schemas/routed_message.avsc), output an `OutboundMessage`
  (schemas/outbound_message.avsc). A record whose header is not the
  RoutedMessage one, or whose datum does not decode, is logged and skipped.
* Output: one `OutboundMessage` per reply on `sms.outbound`, keyed
  `backend:identity` (the phone's connection, as every smsflow record is),
  with `in_response_to` = the inbound message's id and `app` = NAME.
* Reply ids are derived, not random: a UUID v5 of the inbound id, the app
  name and the reply's number, exactly as smsflow's built-in apps derive them
  (`derived_id` in src/message.rs).
* At least once: an input offset is committed only once every reply written
  for it is acknowledged by the broker. A crash between the two means the
  message is handled again after the restart and its reply written again --
  with the *same* id, because the id depends only on the input. Sinks send
  each id at most once, so the phone still gets a single SMS. A random id
  would make the repeat a new message and the phone would get two.

Needs Python 3.11+ and, from PyPI, confluent-kafka and fastavro (the
versions scripts/tools.sh pins: confluent-kafka==2.16.1 fastavro==1.13.1).

    python examples/external_app.py --brokers 127.0.0.1:9092 --app shout

SIGTERM or SIGINT stops it after the batch in hand: its replies are awaited,
its offsets committed, then it leaves the group.
"""

import argparse
import io
import json
import logging
import signal
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

log = logging.getLogger("external_app")

#: Avro single-object encoding's two marker bytes.
SINGLE_OBJECT_MARKER = b"\xc3\x01"

#: The namespace of reply ids: smsflow's `derived_id` uses the same one, so an
#: app's n-th reply to a message has the same id whatever language wrote it.
REPLY_ID_NAMESPACE = uuid.UUID("5f1c0c3e-8a4b-4d2e-9b1a-5d6f7e8f9a0b")

HELP = "To shout some text, send: SHOUT <ANYTHING>"

#: Records taken from the consumer at once; their replies are awaited together
#: and their offsets committed together.
BATCH = 100


# --- The app itself ---------------------------------------------------------


def shout(routed: dict) -> list[str]:
    """The texts to answer `routed` with (a RoutedMessage, as a dict).

    The route is the keyword `shout`: the router has already taken the
    keyword off and put what follows it in `rest` (None when nothing does).
    """
    rest = (routed["rest"] or "").strip()
    if not rest:
        return [HELP]
    return [rest.upper()]


# --- Avro single-object encoding ----------------------------------------------


class NotDecodable(Exception):
    """A record that is not a valid single-object encoded datum of the schema."""


class Codec:
    """Encoder and decoder of one schema file, with single-object framing."""

    def __init__(self, path: Path):
        raw = json.loads(path.read_text())
        self.name = raw["name"]
        self.schema = parse_schema(raw)
        # fastavro gives the CRC-64-AVRO (Rabin) fingerprint as the hex of its
        # little-endian bytes: the order single-object encoding writes them in.
        self.header = SINGLE_OBJECT_MARKER + bytes.fromhex(
            fingerprint(to_parsing_canonical_form(raw), "CRC-64-AVRO")
        )
        # With `kafka.framing: confluent` smsflow writes 00 + this id instead:
        # the fingerprint's first four bytes, big-endian, top bit cleared.
        own_id = int.from_bytes(self.header[2:6], "big") & 0x7FFFFFFF
        self.confluent_header = b"\x00" + own_id.to_bytes(4, "big")

    def encode(self, record: dict) -> bytes:
        out = io.BytesIO()
        out.write(self.header)
        schemaless_writer(out, self.schema, record)
        return out.getvalue()

    def decode(self, payload: bytes | None) -> dict:
        if payload is not None and payload[:1] == b"\x00":
            # Confluent framing (smsflow's own ids; an external registry's
            # ids would be looked up there).
            if payload[:5] != self.confluent_header:
                raise NotDecodable(
                    f"Confluent-framed with schema id {int.from_bytes(payload[1:5], 'big')},"
                    f" {self.name} is {int.from_bytes(self.confluent_header[1:], 'big')}"
                )
            payload = self.header + payload[5:]
        if payload is None or len(payload) < len(self.header):
            size = 0 if payload is None else len(payload)
            raise NotDecodable(f"{size} bytes, too short for single-object framing")
        if payload[:2] != SINGLE_OBJECT_MARKER:
            raise NotDecodable(f"no single-object marker C3 01 (found {payload[:2].hex()})")
        if payload[: len(self.header)] != self.header:
            raise NotDecodable(
                f"written with another schema (fingerprint {payload[2:10].hex()},"
                f" {self.name} is {self.header[2:].hex()})"
            )
        body = io.BytesIO(payload[len(self.header) :])
        try:
            record = schemaless_reader(body, self.schema)
        except Exception as e:  # fastavro raises many kinds on bad bytes
            raise NotDecodable(f"not a valid {self.name}: {e!r}") from e
        left = len(payload) - len(self.header) - body.tell()
        if left:
            raise NotDecodable(f"{left} bytes left over after the {self.name}")
        return record


# --- The contract: replies, ids, keys -----------------------------------------


def reply_id(inbound_id: str, app: str, n: int) -> str:
    """The id of `app`'s `n`-th reply to the message `inbound_id`.

    Derived from the input only, so that handling a redelivered message again
    writes the same id and sinks recognise the repeat (smsflow's derived_id).
    """
    return str(uuid.uuid5(REPLY_ID_NAMESPACE, f"{inbound_id}/{app}/{n}"))


def connection_key(connection: dict) -> bytes:
    """The Kafka key of every record about one phone: `backend:identity`."""
    return f"{connection['backend']}:{connection['identity']}".encode()


def reply(routed: dict, app: str, n: int, text: str) -> dict:
    """An OutboundMessage answering `routed` over the connection it came in on."""
    inbound = routed["message"]
    fields = {}
    if inbound["external_id"] is not None:
        # As RapidSMS's msg.respond: providers thread replies with it.
        fields["external_id"] = inbound["external_id"]
    return {
        "id": reply_id(inbound["id"], app, n),
        "connection": inbound["connection"],
        "text": text,
        "created_at": int(time.time() * 1000),
        "in_response_to": inbound["id"],
        "app": app,
        "campaign_id": None,
        "priority": "normal",
        "is_error": False,
        # Set later by smsflow's outgoing router.
        "encoding": None,
        "segments": 0,
        "fields": fields,
    }


# --- The consume -> produce -> commit loop --------------------------------------


class Stop:
    """Set by SIGTERM or SIGINT; the loop finishes its batch and returns."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self.request)
        signal.signal(signal.SIGINT, self.request)

    def request(self, signum, _frame):
        log.info("%s: stopping after the current batch", signal.Signals(signum).name)
        self.requested = True


def run(args) -> int:
    routed_codec = Codec(args.schemas / "routed_message.avsc")
    outbound_codec = Codec(args.schemas / "outbound_message.avsc")
    topic = args.topic or f"sms.app.{args.app}"
    group = args.group or f"smsflow.app:{args.app}"

    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": group,
            # Offsets are committed by hand, after the replies are acknowledged.
            "enable.auto.commit": False,
            # A new group starts with the oldest message nobody answered yet.
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            # librdkafka's 500 ms would delay every reply by up to that.
            "fetch.wait.max.ms": 20,
        }
    )
    producer = Producer(
        {
            "bootstrap.servers": args.brokers,
            # Kafka's Java partitioner, as smsflow sets it: a key lands on the
            # same partition whoever writes it, so one phone's replies stay in
            # order with the ones smsflow's apps write.
            "partitioner": "murmur2_random",
            "acks": "all",
            "linger.ms": 5,
        }
    )
    consumer.subscribe([topic])
    log.info(
        "app %s: reading %s as group %s, answering on %s (RoutedMessage fingerprint %s)",
        args.app,
        topic,
        group,
        args.outbound,
        routed_codec.header[2:].hex(),
    )

    stop = Stop()
    while not stop.requested:
        records = consumer.consume(num_messages=BATCH, timeout=1.0)
        if not records:
            continue

        failed = []

        def acknowledged(err, record):
            if err is not None:
                failed.append(f"{record.key()!r}: {err}")

        # Where each partition goes on from once this batch is done.
        next_offsets = {}
        for record in records:
            if record.error():
                log.warning("consumer: %s", record.error())
                continue
            next_offsets[(record.topic(), record.partition())] = record.offset() + 1
            try:
                routed = routed_codec.decode(record.value())
            except NotDecodable as e:
                log.warning(
                    "skipped %s[%d]@%d: %s",
                    record.topic(),
                    record.partition(),
                    record.offset(),
                    e,
                )
                continue
            if not routed["message"]["connection"]["identity"].strip():
                log.warning(
                    "skipped %s[%d]@%d: empty identity, nobody to answer",
                    record.topic(),
                    record.partition(),
                    record.offset(),
                )
                continue
            for n, text in enumerate(shout(routed)):
                out = reply(routed, args.app, n, text)
                # The batch is far smaller than librdkafka's queue, so
                # produce() cannot meet a full queue (BufferError) here.
                producer.produce(
                    args.outbound,
                    key=connection_key(out["connection"]),
                    value=outbound_codec.encode(out),
                    on_delivery=acknowledged,
                )

        # Wait for the broker to acknowledge every reply of the batch
        # (librdkafka retries on its own until message.timeout.ms).
        producer.flush()
        if failed:
            # Commit nothing: after a restart the batch is handled again, and
            # its replies, written with the same ids, are recognised as repeats.
            log.error("replies not written, stopping without committing: %s", "; ".join(failed))
            consumer.close()
            return 1
        if next_offsets:
            offsets = [TopicPartition(t, p, o) for (t, p), o in next_offsets.items()]
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as e:
                # Typically a rebalance: the partition's new owner reads these
                # records again and writes the same replies (same ids).
                log.warning("commit failed, the batch will be redelivered: %s", e)

    consumer.close()
    log.info("app %s: stopped", args.app)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description="The `shout` smsflow app: reads sms.app.<app>, answers on sms.outbound."
    )
    parser.add_argument(
        "--brokers", required=True, help="Kafka bootstrap servers, host:port[,...]"
    )
    parser.add_argument(
        "--app", default="shout", help="the app's name in the pipeline (default: shout)"
    )
    parser.add_argument("--group", help="consumer group (default: smsflow.app:<app>)")
    parser.add_argument(
        "--schemas",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "schemas",
        help="directory of smsflow's .avsc files (default: the repository's schemas/)",
    )
    parser.add_argument("--topic", help="input topic (default: sms.app.<app>)")
    parser.add_argument(
        "--outbound", default="sms.outbound", help="output topic (default: sms.outbound)"
    )
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
