"""Read smsflow's records with fastavro, and write them again.

stdin: JSON lines {"schema": "<file in schemas/>", "record": "<hex>"}, each
record single-object encoded (C3 01, fingerprint, datum). stdout: a JSON
line per record: {"value": <what fastavro read>, "again": "<hex>"}, where
`again` is fastavro's own single-object encoding of that value.

Usage: fastavro_reencode.py SCHEMAS_DIR
"""
import io
import json
import sys

import fastavro


def main():
    schemas = sys.argv[1]
    parsed = {}
    for line in sys.stdin:
        ask = json.loads(line)
        name = ask["schema"]
        if name not in parsed:
            with open(f"{schemas}/{name}") as f:
                parsed[name] = fastavro.parse_schema(json.load(f))
        schema = parsed[name]
        record = bytes.fromhex(ask["record"])
        header, datum = record[:10], record[10:]
        reader = io.BytesIO(datum)
        value = fastavro.schemaless_reader(reader, schema)
        if reader.tell() != len(datum):
            raise SystemExit(f"{name}: {len(datum) - reader.tell()} bytes left over")
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, value)
        print(json.dumps({"value": value, "again": (header + out.getvalue()).hex()}, default=str))


main()
