#!/usr/bin/env bash
# Runs schemathesis (all checks; examples, coverage, fuzzing and stateful phases) against a
# fresh mcpd on the given store: `sqlite` or `postgres` (a database of its own on the server
# DATABASE_URL names). Needs the built mcpd (target/debug) and a venv holding schemathesis
# (scripts/test.sh makes both). Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:?usage: scripts/schemathesis.sh sqlite|postgres}
target=${CARGO_TARGET_DIR:-target}
venv="$target/pyenv"
work=$(mktemp -d /tmp/mcpd-schemathesis.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
token=$(python3 -c 'import secrets; print(secrets.token_hex(24))')
base="http://127.0.0.1:$port"

db_args=()
database=""
if [ "$store" = postgres ]; then
    : "${DATABASE_URL:?DATABASE_URL names the PostgreSQL server}"
    database="mcpd_schemathesis_$$"
    psql "$DATABASE_URL" -qc "create database $database" >/dev/null
    db_args=(--database-url "${DATABASE_URL%/*}/$database")
fi

cleanup() {
    if [ -n "${pid:-}" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [ -n "$database" ]; then psql "$DATABASE_URL" -qc "drop database if exists $database with (force)" >/dev/null || true; fi
    [ -n "${KEEP_LOG:-}" ] && cp "$work/mcpd.log" "$KEEP_LOG"
    rm -rf "$work"
}
trap cleanup EXIT

# The token through the environment, not the command line, where `ps` would show it.
MCPD_RATE_LIMIT=0 MCPD_BOOTSTRAP_TOKEN=$token "$target/debug/mcpd" serve --listen "127.0.0.1:$port" \
    --data-dir "$work/data" "${db_args[@]}" >"$work/mcpd.log" 2>&1 &
pid=$!
# Waits for mcpd, then makes the fuzzer an admin of its own, so that deleting the bootstrap
# admin or its binding (which it may well try) does not lock it out of the rest of the run.
# Prints the fuzzer's user, token and token id.
read -r fuzzer fuzz_token fuzz_token_id < <(python3 - "$base" "$token" <<'PY'
import json, secrets, sys, time, urllib.request
base, token = sys.argv[1], sys.argv[2]
for _ in range(100):
    try:
        urllib.request.urlopen(base + "/readyz", timeout=2)
        break
    except OSError:
        time.sleep(0.2)
def api(method, path, body):
    request = urllib.request.Request(base + path, method=method, data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))
user = "schemathesis-" + secrets.token_hex(4)
api("POST", "/api/v1/users", {"name": user})
api("POST", "/api/v1/rolebindings", {"name": user, "role": "admin", "users": [user]})
issued = api("POST", "/api/v1/tokens", {"user": user})
print(user, issued["token"], issued["name"])
PY
)
[ -n "${fuzz_token:-}" ] || { echo "mcpd did not start, or the fuzzer's admin could not be made:" >&2; cat "$work/mcpd.log" >&2; exit 1; }

# A real CA certificate, for the `pem-certificates` format of a backend's caCert.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=schemathesis-ca \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null || echo "openssl is missing: caCert is fuzzed blank only" >&2

status=0
seed=${SCHEMATHESIS_SEED:-$RANDOM$RANDOM}
echo "schemathesis seed on $store: $seed (replay with SCHEMATHESIS_SEED=$seed; more examples with SCHEMATHESIS_MAX_EXAMPLES=500)"
MCPD_FUZZ_USER=$fuzzer MCPD_FUZZ_TOKEN_ID=$fuzz_token_id MCPD_FUZZ_CA=$work/ca.pem SCHEMATHESIS_HOOKS=hooks PYTHONPATH=tests/schemathesis "$venv/bin/st" --config-file tests/schemathesis/schemathesis.toml run "$base/api/v1/openapi.json" \
    --checks all --phases examples,coverage,fuzzing,stateful \
    --header "Authorization: Bearer $fuzz_token" \
    --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" --request-timeout 20 \
    --seed "$seed" --workers 1 --no-color \
    --generation-allow-x00 false --suppress-health-check all || status=$?
if grep -E '(ERROR|panicked)' "$work/mcpd.log" >/dev/null; then
    echo "mcpd logged errors during the run:" >&2
    grep -E '(ERROR|panicked)' "$work/mcpd.log" | head -20 >&2
    status=1
fi
exit "$status"
