"""Sign webhooks with Twilio's own helper library (PyPI `twilio`), so that
the tests check smsflow's signatures against the provider's code.

Reads JSON from stdin: one case or a list of them, each
  {"url": "https://...", "params": {"Name": "value", ...} or [["Name", "value"], ...], "token": "..."}
(a list of pairs may repeat a name). Prints each case's X-Twilio-Signature,
one per line, as twilio.request_validator.RequestValidator(token)
.compute_signature(url, params) computes it.
"""

import json
import sys

from twilio.request_validator import RequestValidator


class MultiDict(dict):
    """Repeated names, as Flask's MultiDict gives them to the validator."""

    def getall(self, name):
        return self[name]


def params_of(raw):
    if isinstance(raw, dict):
        return raw
    multi = MultiDict()
    for name, value in raw:
        multi.setdefault(name, []).append(value)
    return multi


def main():
    cases = json.load(sys.stdin)
    if isinstance(cases, dict):
        cases = [cases]
    for case in cases:
        validator = RequestValidator(case["token"])
        params = params_of(case["params"])
        signature = validator.compute_signature(case["url"], params)
        # The library's own check accepts what it computed.
        assert validator.validate(case["url"], params, signature), case
        print(signature)


if __name__ == "__main__":
    main()
