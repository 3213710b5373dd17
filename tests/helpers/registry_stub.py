#!/usr/bin/env python3
"""A stand-in for an external Confluent schema registry, for the test of
smsflow registering its schemas (no Confluent registry or Karapace can be
installed here: both need a JVM or are not on PyPI).

It does what a registry does for a producer: POST
/subjects/<subject>/versions gives a schema an id (the same id for the
same schema text, a new one for a new text), GET /schemas/ids/<id> gives
it back. It asks for basic auth (--user/--password). It prints its port
on the first line, then one JSON line per registration.
"""

import argparse
import base64
import http.server
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--first-id", type=int, default=1001)
    args = ap.parse_args()
    expected = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()
    ids = {}  # schema text -> id
    schemas = {}  # id -> schema text

    class Handler(http.server.BaseHTTPRequestHandler):
        def answer(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def authorized(self):
            if self.headers.get("Authorization") == expected:
                return True
            self.answer(401, {"error_code": 401, "message": "Unauthorized"})
            return False

        def do_POST(self):
            if not self.authorized():
                return
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[0] != "subjects" or parts[2] != "versions":
                return self.answer(404, {"error_code": 404, "message": "not found"})
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            text = body["schema"]
            json.loads(text)  # a registry refuses what is not JSON
            if text not in ids:
                ids[text] = args.first_id + len(ids)
                schemas[ids[text]] = text
            print(json.dumps({"subject": parts[1], "id": ids[text]}), flush=True)
            self.answer(200, {"id": ids[text]})

        def do_GET(self):
            if not self.authorized():
                return
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) == 3 and parts[:2] == ["schemas", "ids"] and int(parts[2]) in schemas:
                return self.answer(200, {"schema": schemas[int(parts[2])]})
            self.answer(404, {"error_code": 40403, "message": "Schema not found"})

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
