#!/usr/bin/env bash
# The demo on embedded SQLite: migrate, make an `admin` superuser with a fresh random password,
# run the dev server and one worker, enqueue demo jobs. Ctrl-C stops everything.
#   bash scripts/demo.sh
#   PORT=8001 DATABASE_URL=postgres://... bash scripts/demo.sh
#   DEMO_EXIT_AFTER=20 bash scripts/demo.sh      # stop by itself after 20 s (smoke test)
#   VENV=/tmp/demo-venv bash scripts/demo.sh      # another virtualenv than .venv
# Needs only a Python >= 3.12 and pip's registry: no apt-get, no browser, no database drivers
# (ensure_venv demo), and bash 3.2 (macOS) is enough.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

PY="${VENV:-$ROOT/.venv}/bin/python"
PORT="${PORT:-8000}"
export DATABASE_URL="${DATABASE_URL:-sqlite:///$ROOT/var/demo.sqlite3}"
export PYTHONUNBUFFERED=1
CHILDREN=()

# start NAME CMD...: run CMD in its own session, so stopping it reaches its whole process group.
# (Python's os.setsid: macOS has no setsid command.)
start() {
    local name="$1"
    shift
    log "starting $name: $*"
    "$PY" -c 'import os, sys; os.setsid(); os.execvp(sys.argv[1], sys.argv[1:])' "$@" &
    CHILDREN+=("$!")
}

stop_children() {
    local pid i alive
    trap - INT TERM EXIT
    [[ ${#CHILDREN[@]} -eq 0 ]] && return 0
    log "stopping server and worker"
    for pid in "${CHILDREN[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    # Give the worker its graceful-shutdown grace period, then insist.
    for ((i = 0; i < 40; i++)); do
        alive=0
        for pid in "${CHILDREN[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        [[ $alive -eq 0 ]] && break
        sleep 0.5
    done
    for pid in "${CHILDREN[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap 'stop_children; exit 130' INT
trap 'stop_children; exit 143' TERM
trap 'stop_children' EXIT

ensure_venv demo
mkdir -p "$ROOT/var"

log "migrate ($DATABASE_URL)"
"$PY" manage.py migrate --noinput -v 0

ADMIN_PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(12))')"
DEMO_ADMIN_PASSWORD="$ADMIN_PASSWORD" "$PY" manage.py shell -v 0 -c '
import os
from django.contrib.auth import get_user_model

user, _ = get_user_model().objects.get_or_create(
    username="admin", defaults={"email": "admin@example.com"}
)
user.is_staff = user.is_superuser = user.is_active = True
user.set_password(os.environ["DEMO_ADMIN_PASSWORD"])
user.save()
'

worker_args=(--processes 1 --concurrency 4)
if "$PY" manage.py runworker --help 2>/dev/null | grep -q -- '--beat'; then
    worker_args+=(--beat)
fi

start server "$PY" manage.py runserver "127.0.0.1:$PORT"
start worker "$PY" manage.py runworker "${worker_args[@]}"

log "enqueueing demo jobs"
"$PY" manage.py demo_enqueue

printf '\n\033[1;32m%s\033[0m\n' "================================================================"
printf '\033[1;32m  django-jobs demo is running\033[0m\n'
printf '    URL:       http://127.0.0.1:%s/admin/\n' "$PORT"
printf '    username:  admin\n'
printf '    password:  %s\n' "$ADMIN_PASSWORD"
printf '    database:  %s\n' "$DATABASE_URL"
printf '  Ctrl-C stops the server and the worker.\n'
printf '\033[1;32m%s\033[0m\n\n' "================================================================"

# Wait for DEMO_EXIT_AFTER seconds, or for the server or worker to exit (which ends the demo).
# A polling loop: `wait -n` needs bash >= 5.1, and macOS ships bash 3.2.
deadline=""
if [[ -n "${DEMO_EXIT_AFTER:-}" ]]; then deadline=$((SECONDS + DEMO_EXIT_AFTER)); fi
while :; do
    for pid in "${CHILDREN[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            printf '\033[1;31mERROR:\033[0m the server or the worker exited (pid %s); %s\n' \
                "$pid" "stopping the demo" >&2
            exit 1
        fi
    done
    if [[ -n "$deadline" && $SECONDS -ge $deadline ]]; then
        log "DEMO_EXIT_AFTER=$DEMO_EXIT_AFTER elapsed"
        exit 0
    fi
    sleep 0.5
done
