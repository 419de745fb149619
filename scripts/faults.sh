#!/usr/bin/env bash
# The fault suite's long versions (tests/faults, FAULTS_SCALE=long), then its table of figures.
#   bash scripts/faults.sh [PYTEST_ARGS...]      (or: make faults)
# Real runworker/runbeat processes on PostgreSQL (database TEST_DATABASE_NAME, default
# test_testfaults$TEST_DB_SUFFIX on 127.0.0.1:5432) are SIGKILLed, SIGTERMed, cut off
# (pg_terminate_backend, in that test database only), run with shifted clocks (libfaketime);
# the Redis and crash scenarios use a private redis-server and a private PostgreSQL cluster of
# their own. FAULTS_SCALE=short runs the versions CI runs. Report: var/faults-report.jsonl.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
ensure_venv
REPORT="$ROOT/var/faults-report.jsonl"
mkdir -p "$ROOT/var"
rm -f "$REPORT"
rc=0
env -u REDIS_URL -u JOBS_OPTIONS \
    DATABASE_URL="postgres://postgres@127.0.0.1:5432/test" \
    TEST_DATABASE_NAME="${TEST_DATABASE_NAME:-test_testfaults${TEST_DB_SUFFIX:-}}" \
    FAULTS_SCALE="${FAULTS_SCALE:-long}" FAULTS_REPORT="$REPORT" \
    "$ROOT/.venv/bin/python" -m pytest -p no:cacheprovider -m faults --timeout 3600 -rxX \
    tests/faults "$@" || rc=$?
"$ROOT/.venv/bin/python" - "$REPORT" <<'PY'
import json, sys
from pathlib import Path

rows = [json.loads(line) for line in Path(sys.argv[1]).read_text().splitlines()] \
    if Path(sys.argv[1]).exists() else []
head = ("scenario", "jobs", "faults", "lost", "twice while alive", "twice after expiry", "wall s")
keys = ("scenario", "jobs", "faults", "lost", "twice_while_alive", "twice_after_expiry",
        "wall_seconds")
print("| " + " | ".join(head) + " |")
print("|" + "|".join(["---"] + ["--:"] * (len(head) - 1)) + "|")
for row in rows:
    print("| " + " | ".join(str(row[k]) for k in keys) + " |")
PY
exit "$rc"
