"""Schemathesis hooks for mcpd's run (scripts/schemathesis.sh).

- `caCert` has the format `pem-certificates`: text holding usable certificates, which mcpd
  checks when a backend is written and no pattern can spell out. Its generator draws a real
  CA certificate (made by the run script, MCPD_FUZZ_CA) or nothing.
- An `Idempotency-Key` is unique per request: a key reused for another request is rightly 422,
  and one reused with the same body rightly answers the first request's stored response without
  doing it again (a user created, deleted, then "created" under the same key is not there),
  which no schema can say. Like any client, the run gives every key that is valid (the schema's
  pattern, VALID_KEY) a fresh one, in negative cases too, since mcpd takes many of them anyway
  (an unknown query parameter is ignored). Only a case whose headers are what is negative goes
  as drawn: touching them would hide what was left out (a missing Authorization header).
- The run's own identity (its user, the binding making it an admin, its token; named by
  MCPD_FUZZ_USER and MCPD_FUZZ_TOKEN_ID) is not deleted or replaced mid-run: that would turn
  every later case into a 401 or 403 and test nothing. Such a case is sent to a name that does
  not exist instead. Everything else, the bootstrap admin included, is fair game.
- A watch (`?watch=true` on a list) is a stream that stays open until the client leaves; a
  request-response fuzzer would only wait for it to time out. Watches have their own
  end-to-end tests (tests/e2e/watch.rs), so a case asking for one is sent as the plain list.
- In the stateful phase a DELETE goes without `dryRun`: schemathesis' use-after-free check
  (ST301) takes any 2xx DELETE for a deletion and then expects the resource's GET to be 404,
  while a dry run rightly deletes nothing and still answers 2xx (as kubectl's server-side dry
  run does). The other phases still send dry-run deletes as drawn; the API test
  `a_dry_run_checks_every_rule_and_records_nothing` checks that they change nothing.
"""

import os
import re
import uuid

import schemathesis
from hypothesis import strategies as st
from schemathesis.engine import observations
from schemathesis.core.parameters import ParameterLocation
from schemathesis.generation.meta import TestPhase

# A workaround for schemathesis 4.32's link learning, which scans answers for URLs with
# urllib's urlsplit and dies on a string it cannot split (an Llm's `url` of "http://[x", which
# mcpd stores as given): such a string is no link, so it is skipped instead of ending the run.
_same_origin_path = observations._same_origin_path


def _same_origin_path_or_none(value, origin):
    try:
        return _same_origin_path(value, origin)
    except ValueError:
        return None


observations._same_origin_path = _same_origin_path_or_none

VALID_KEY = re.compile(r"\A[!-~]{1,255}\Z")
FUZZ_USER = os.environ.get("MCPD_FUZZ_USER")
CERTIFICATES = [""]
if os.path.exists(os.environ.get("MCPD_FUZZ_CA", "")):
    with open(os.environ["MCPD_FUZZ_CA"]) as pem:
        CERTIFICATES.append(pem.read())
schemathesis.openapi.format("pem-certificates", st.sampled_from(CERTIFICATES))
PROTECTED = {
    "/api/v1/users/{name}": FUZZ_USER,
    "/api/v1/rolebindings/{name}": FUZZ_USER,
    "/api/v1/tokens/{name}": os.environ.get("MCPD_FUZZ_TOKEN_ID"),
}


def _values(value):
    return value if isinstance(value, list) else [value]


def _true(value):
    """What mcpd reads as a set flag: true, in any case."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _negative_headers(case):
    """Whether the case was drawn to break its headers (not its query, path or body)."""
    meta = case.meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    component = meta.components.get(ParameterLocation.HEADER)
    if component is not None and component.mode.is_negative:
        return True
    return getattr(meta.phase.data, "parameter_location", None) == ParameterLocation.HEADER


@schemathesis.hook
def before_call(ctx, case, kwargs):
    protected = PROTECTED.get(case.operation.path)
    if protected and case.method.upper() in ("DELETE", "PUT") and (case.path_parameters or {}).get("name") == protected:
        case.path_parameters["name"] = "gone-" + uuid.uuid4().hex[:8]
    if case.query and any(_true(v) for v in _values(case.query.get("watch"))):
        case.query["watch"] = False
    stateful = case.meta is not None and case.meta.phase.name == TestPhase.STATEFUL
    if stateful and case.method.upper() == "DELETE" and case.query:
        case.query.pop("dryRun", None)
    # A valid key for a valid one: the case stays as negative or positive as it was drawn.
    headers = case.headers or {}
    for name in list(headers):
        valid = isinstance(headers[name], str) and VALID_KEY.match(headers[name])
        if name.lower() == "idempotency-key" and valid and not _negative_headers(case):
            headers[name] = str(uuid.uuid4())
