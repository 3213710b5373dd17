"""SMS PDUs from two independent Python implementations, for tests/modem_pdu_python.rs.

python-gsmmodem-new (gsmmodem.pdu) encodes SMS-SUBMITs and decodes
SMS-STATUS-REPORTs; smspdudecoder decodes SMS-SUBMITs and SMS-DELIVERs (it
has no encoder and no STATUS-REPORT). Their known bugs are listed in
research note 18, section 2; the Rust test decides which fields to trust.

stdin: one JSON document
    {"submit":   [{"name", "to", "text", "reference", "status_report"}],
     "outgoing": [{"name", "hex"}],     SMS-SUBMITs for smspdudecoder
     "incoming": [{"name", "hex"}],     SMS-DELIVERs for smspdudecoder
     "reports":  [{"name", "hex"}]}     SMS-STATUS-REPORTs for gsmmodem
stdout: one JSON document with the same four keys, each an object from the
case's name to {"ok": <result>} or {"error": "<exception>"}: a library that
refuses one case does not hide the others.

    submit:   [{"hex", "tpdu_length"}], one per part, from
              gsmmodem.pdu.encodeSmsSubmitPdu(to, text, reference=...,
              smsc=None, requestStatusReport=...); the hex starts with the
              SCA octet 00
    outgoing: {"recipient", "text", "message_ref", "status_report",
               "encoding", "concat"}
    incoming: {"sender", "text", "date", "partial", "encoding", "concat"}
    reports:  {"type", "reference", "number", "status", "time", "discharge",
               "tpdu_length"}
    concat:   {"iei", "reference", "parts", "part"} or null (smspdudecoder's
              user data header); dates are ISO 8601 with their offset.
"""
import json
import sys
from io import StringIO

from gsmmodem import pdu as gsmmodem_pdu
from smspdudecoder import easy, fields


def encode_submit(case):
    pdus = gsmmodem_pdu.encodeSmsSubmitPdu(
        case["to"],
        case["text"],
        reference=case["reference"],
        smsc=None,
        requestStatusReport=case["status_report"],
    )
    return [{"hex": str(p), "tpdu_length": p.tpduLength} for p in pdus]


def concat_of(user_data):
    header = user_data.get("header") or {}
    for element in header.get("elements") or []:
        if element["iei"] in (0x00, 0x08):
            data = element["data"]
            return {
                "iei": element["iei"],
                "reference": data["reference"],
                "parts": data["parts_count"],
                "part": data["part_number"],
            }
    return None


def read_outgoing(case):
    easy_view = easy.read_outgoing_sms(case["hex"])
    full = fields.SMSSubmit.decode(StringIO(case["hex"]))
    return {
        "recipient": easy_view["recipient"],
        "text": easy_view["content"],
        "message_ref": full["message-ref"],
        "status_report": full["header"]["srr"],
        "encoding": full["dcs"]["encoding"],
        "concat": concat_of(full["user_data"]),
    }


def read_incoming(case):
    easy_view = easy.read_incoming_sms(case["hex"])
    full = fields.SMSDeliver.decode(StringIO(case["hex"]))
    return {
        "sender": easy_view["sender"],
        "text": easy_view["content"],
        "date": easy_view["date"].isoformat(),
        "partial": easy_view["partial"],
        "encoding": full["dcs"]["encoding"],
        "concat": concat_of(full["user_data"]),
    }


def read_report(case):
    report = gsmmodem_pdu.decodeSmsPdu(case["hex"])
    return {
        "type": report["type"],
        "reference": report["reference"],
        "number": report["number"],
        "status": report["status"],
        "time": report["time"].isoformat(),
        "discharge": report["discharge"].isoformat(),
        "tpdu_length": report["tpdu_length"],
    }


def each(cases, work):
    answers = {}
    for case in cases:
        try:
            answers[case["name"]] = {"ok": work(case)}
        except Exception as e:  # the test reports it under the case's name
            answers[case["name"]] = {"error": f"{type(e).__name__}: {e}"}
    return answers


def main():
    request = json.load(sys.stdin)
    json.dump(
        {
            "submit": each(request.get("submit", []), encode_submit),
            "outgoing": each(request.get("outgoing", []), read_outgoing),
            "incoming": each(request.get("incoming", []), read_incoming),
            "reports": each(request.get("reports", []), read_report),
        },
        sys.stdout,
    )


main()
