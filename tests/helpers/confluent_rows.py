#!/usr/bin/env python3
"""Read a Confluent-framed topic with two standard tools, no custom decoding.

Consumes --count records of --topic from the brokers (confluent-kafka),
writes their raw values one after the other to --dump, then decodes them:

- with confluent-kafka's AvroDeserializer and SchemaRegistryClient;
- with chDB (embedded ClickHouse): file(dump, 'AvroConfluent') with
  format_avro_schema_registry_url.

Both point at --registry (smsflow's admin listener). Timestamps become
milliseconds since the epoch on both sides. Prints one JSON object:
{"confluent_kafka": [...], "chdb": [...], "ids": [schema id of each record]}.
"""

import argparse
import datetime
import json
import struct
import sys
import time

import chdb
from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def millis(value):
    """datetimes (fastavro's timestamp-millis) as ms since the epoch, deeply."""
    if isinstance(value, datetime.datetime):
        return round(value.timestamp() * 1000)
    if isinstance(value, dict):
        return {k: millis(v) for k, v in value.items()}
    if isinstance(value, list):
        return [millis(v) for v in value]
    return value


def consume(brokers, topic, count, timeout):
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"confluent-rows-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    values = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < count and time.monotonic() < deadline:
            m = consumer.poll(1.0)
            if m is None or m.error():
                continue
            values.append(m.value())
    finally:
        consumer.close()
    if len(values) < count:
        sys.exit(f"only {len(values)} of {count} records on {topic} within {timeout} s")
    return values


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    values = consume(args.brokers, args.topic, args.count, args.timeout)
    with open(args.dump, "wb") as f:
        f.write(b"".join(values))

    deserialize = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    ctx = SerializationContext(args.topic, MessageField.VALUE)
    confluent_rows = [millis(deserialize(v, ctx)) for v in values]

    settings = f"SETTINGS format_avro_schema_registry_url='{args.registry}'"
    source = f"file('{args.dump}', 'AvroConfluent')"
    columns = chdb.query(f"DESCRIBE {source} {settings}", "JSONEachRow")
    stamps = [
        c["name"]
        for c in map(json.loads, str(columns).splitlines())
        if c["type"].startswith("DateTime64") or c["type"].startswith("Nullable(DateTime64")
    ]
    replace = ""
    if stamps:
        replace = " REPLACE (" + ", ".join(f"toUnixTimestamp64Milli({c}) AS {c}" for c in stamps) + ")"
    result = chdb.query(f"SELECT *{replace} FROM {source} {settings}", "JSONEachRow")
    chdb_rows = [json.loads(line) for line in str(result).splitlines() if line.strip()]

    ids = [struct.unpack(">I", v[1:5])[0] if v[:1] == b"\x00" else None for v in values]
    json.dump({"confluent_kafka": confluent_rows, "chdb": chdb_rows, "ids": ids}, sys.stdout)


if __name__ == "__main__":
    main()
