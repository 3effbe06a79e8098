"""Schemathesis hooks for mcpd's run (scripts/schemathesis.sh).

- An `Idempotency-Key` is unique per request: a key reused for another request is rightly 422,
  which no schema can say. Like any client, the run gives each valid request carrying a key a
  fresh one; negative cases are sent as drawn.
- A watch (`?watch=true` on a list) is a stream that stays open until the client leaves; a
  request-response fuzzer would only wait for it to time out. Watches have their own
  end-to-end tests (tests/e2e/watch.rs), so a case asking for one is sent as the plain list.
"""

import re
import uuid

import schemathesis

VALID_KEY = re.compile(r"\A[!-~]{1,255}\Z")


@schemathesis.hook
def before_call(ctx, case, kwargs):
    if case.query and case.query.get("watch") in (True, "true"):
        case.query["watch"] = False
    # Negative cases go as drawn: a fresh key must not turn one into a positive case.
    negative = case.meta is not None and case.meta.generation.mode.is_negative
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and not negative and isinstance(headers[name], str) and VALID_KEY.match(headers[name]):
            headers[name] = str(uuid.uuid4())
