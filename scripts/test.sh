#!/usr/bin/env bash
# The whole test suite: migrations check, ruff, then pytest on every database in parallel,
# then the disruptive tests alone on PostgreSQL. Extra arguments go to every pytest run.
#   bash scripts/test.sh [PYTEST_ARGS...]
#   TEST_ONLY=sqlite,postgresql bash scripts/test.sh -k claim
# Runs in .venv (the newest Django, 6.1): sqlite, browser (the admin in Chromium, on SQLite),
# postgresql (in-process tests) and postgresql-processes (real workers and beats) side by side,
# performance (the million-row plans, PostgreSQL), mariadb, postgresql+redis (only
# the tests marked redis, which fail there if Redis is down), redis-broker, faults (the fault
# suite's short versions, tests/faults, on PostgreSQL, with a private redis-server and PostgreSQL
# cluster of its own; long versions: scripts/faults.sh), packaging (the tests marked
# packaging: the demo's set-up in a fresh virtualenv without the dev extras, pip's cache reused),
# disruptive (PostgreSQL; selected when TEST_ONLY is empty or names it: it restarts the shared
# PostgreSQL).
# The older Djangos, each in its own venv (docs/django-versions.md): django60 (Django 6.0,
# Python 3.12, SQLite, .venv-django60), django52 and django52-postgresql (Django 5.2 LTS with
# the django-tasks backport, Python 3.12, .venv-django52). Logs: var/test-logs/<run>.log.
# TEST_RUN_TIMEOUT (s, default 840) bounds each parallel run; TEST_DISRUPTIVE_TIMEOUT (default 240).
# TEST_DB_SUFFIX (default empty) is appended to every test database name and REDIS_DB_BASE
# (default 3) numbers the Redis databases, so two checkouts can run their suites side by side.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=scripts/services.sh
source "$ROOT/scripts/services.sh"
cd "$ROOT"
if [[ -n "${CI+x}" ]]; then export CI; fi

PY="$ROOT/.venv/bin/python"
LOGS="$ROOT/var/test-logs"
SUFFIX="${TEST_DB_SUFFIX:-}"
REDIS_DB="${REDIS_DB_BASE:-3}"
PG_URL="postgres://postgres@127.0.0.1:5432/test"
MARIADB_URL="mysql://root@127.0.0.1:3306/test"
SQLITE_URL="sqlite:///$ROOT/var/test-main$SUFFIX.sqlite3"
PYTEST_ARGS=("$@")

# run_env NAME: print the environment (one VAR=value a line) of the pytest run NAME.
run_env() {
    case "$1" in
        sqlite) echo "DATABASE_URL=$SQLITE_URL" ;;
        browser) echo "DATABASE_URL=sqlite:///$ROOT/var/test-browser$SUFFIX.sqlite3" ;;
        performance)
            echo "DATABASE_URL=$PG_URL"
            echo "TEST_DATABASE_NAME=test_testperformance$SUFFIX"
            ;;
        packaging) echo "DATABASE_URL=sqlite:///$ROOT/var/test-packaging$SUFFIX.sqlite3" ;;
        postgresql | disruptive)
            echo "DATABASE_URL=$PG_URL"
            echo "TEST_DATABASE_NAME=test_test$SUFFIX"
            ;;
        postgresql-processes)
            echo "DATABASE_URL=$PG_URL"
            echo "TEST_DATABASE_NAME=test_testprocesses$SUFFIX"
            ;;
        mariadb)
            echo "DATABASE_URL=$MARIADB_URL"
            echo "TEST_DATABASE_NAME=test_test$SUFFIX"
            ;;
        postgresql+redis)
            echo "DATABASE_URL=$PG_URL"
            echo "TEST_DATABASE_NAME=test_testredis$SUFFIX"
            echo "REDIS_URL=redis://127.0.0.1:6379/$REDIS_DB"
            ;;
        faults)
            echo "DATABASE_URL=$PG_URL"
            echo "TEST_DATABASE_NAME=test_testfaults$SUFFIX"
            echo "FAULTS_SCALE=short"
            ;;
        django60 | django52) echo "DATABASE_URL=sqlite:///$ROOT/var/test-$1$SUFFIX.sqlite3" ;;
        django52-postgresql)
            echo "DATABASE_URL=$PG_URL"
            echo "TEST_DATABASE_NAME=test_test${SUFFIX}_django52"
            ;;
        redis-broker)
            echo "DATABASE_URL=$PG_URL"
            echo "TEST_DATABASE_NAME=test_testredisbroker$SUFFIX"
            echo "REDIS_URL=redis://127.0.0.1:6379/$((REDIS_DB + 1))"
            echo "JOBS_OPTIONS={\"broker\": \"redis\", \"redis_url\": \"redis://127.0.0.1:6379/$((REDIS_DB + 1))\"}"
            ;;
        *) die "unknown run $1" ;;
    esac
}

# run_python NAME: the interpreter of run NAME (django60*, django52*: .venv-django60/52).
run_python() {
    case "$1" in
        django60* | django52*) echo "$ROOT/.venv-${1%%-*}/bin/python" ;;
        *) echo "$PY" ;;
    esac
}

# ensure_row_venvs: build the virtual environments of the selected runs on older Djangos.
ensure_row_venvs() {
    if selected django60; then ensure_compat_venv django60 3.12 '.[dev]' 'django~=6.0.0'; fi
    if selected django52 || selected django52-postgresql; then
        ensure_compat_venv django52 3.12 '.[dev,django52]' 'django~=5.2.0'
    fi
}

# run_marker NAME: the -m expression of run NAME.
run_marker() {
    # The admin in a browser is the same on every database: it runs once, on SQLite, in a run
    # of its own beside the sqlite run (and where it needs Redis). The million-row plans are
    # PostgreSQL's: a run of their own on PostgreSQL.
    # On Django 5.2 the SQLite run has the in-process tests, the PostgreSQL run the real workers.
    local base="not disruptive and not faults and not packaging"
    case "$1" in
        postgresql+redis) echo "redis and not disruptive and not faults" ;;
        disruptive) echo "disruptive" ;;
        faults) echo "faults" ;;
        packaging) echo "packaging" ;;
        redis-broker) echo "processes and not browser and $base and not redis" ;;
        django60 | django52) echo "not processes and not browser and $base and not redis" ;;
        browser) echo "browser and $base and not redis" ;;
        performance) echo "performance and not browser and $base and not redis" ;;
        django52-postgresql) echo "processes and not browser and $base and not redis" ;;
        # PostgreSQL's share is the largest: its in-process and real-worker tests run side by
        # side, so that neither is left alone on one core at the end.
        postgresql) echo "not processes and not browser and not performance and $base and not redis" ;;
        postgresql-processes) echo "processes and not browser and not performance and $base and not redis" ;;
        *) echo "not browser and not performance and $base and not redis" ;;
    esac
}

# run_paths NAME: the test files of run NAME. The older Djangos run the tests of what differs
# between Django versions (the Tasks API, the backend, the worker's execution, workflows, the
# admin, checks, beat); the database-, CLI- and process-level tests run on 6.1 in every database.
# (Claims, dispatch, heartbeats, limits, snoozes and tracing are the database's and the
# worker's own: they run on 6.1 on every database, not again here.)
VERSION_SENSITIVE=(
    test_admin test_atomic test_backend test_beat_admin test_beat_sync test_beat_tick test_bulk
    test_cancel test_checks test_completion test_django_tasks_behaviour test_django_versions
    test_execution test_job_page test_security test_task_modules test_tasks
    test_testing_helpers test_unique test_worker_loop test_workflows
)
# On Django 5.2 with the backport, the real-worker tests of what runs through it (the worker
# executing tasks: signals, exceptions, results, workflows, beat); leases, heartbeats, faults,
# limits and Redis are the worker's and the database's own, run on 6.1 in every database.
VERSION_SENSITIVE_PROCESSES=(
    test_atomic test_base_exception_workers test_beat_processes test_cancel test_config_matrix
    test_fail_loudly test_processes test_task_modules test_workflows
)
run_paths() {
    case "$1" in
        django60 | django52) printf 'tests/%s.py\n' "${VERSION_SENSITIVE[@]}" ;;
        django52-postgresql) printf 'tests/%s.py\n' "${VERSION_SENSITIVE_PROCESSES[@]}" ;;
        *) echo tests ;;
    esac
}

# run_tolerates_empty NAME: succeed if "no tests collected" (exit 5) is fine for run NAME.
run_tolerates_empty() {
    [[ "$1" == "postgresql+redis" || "$1" == "disruptive" || "$1" == "packaging" ]]
}

selected() {
    local name="$1"
    [[ -z "${TEST_ONLY:-}" ]] && return 0
    [[ ",${TEST_ONLY// /}," == *",$name,"* ]]
}

# start_run NAME TIMEOUT: start pytest for NAME in the background; record its pid.
declare -A PIDS=() START=() RC=() DURATION=()
start_run() {
    local name="$1" limit="$2" envs=() paths=()
    mapfile -t envs < <(run_env "$name")
    mapfile -t paths < <(run_paths "$name")
    {
        echo "# run $name: ${envs[*]} pytest -m '$(run_marker "$name")' ${PYTEST_ARGS[*]}"
        echo "# started $(date -u +%FT%TZ)"
    } >"$LOGS/$name.log"
    START[$name]=$SECONDS
    # timeout puts pytest in its own process group and kills the whole group (worker
    # subprocesses included) when the run overruns.
    env -u DATABASE_URL -u TEST_DATABASE_NAME -u REDIS_URL -u JOBS_OPTIONS "${envs[@]}" \
        timeout --kill-after=30 "$limit" \
        "$(run_python "$name")" -m pytest -p no:cacheprovider -m "$(run_marker "$name")" --durations=15 \
        "${paths[@]}" ${PYTEST_ARGS[@]+"${PYTEST_ARGS[@]}"} >>"$LOGS/$name.log" 2>&1 &
    PIDS[$name]=$!
}

# wait_run [NAME]: wait for run NAME, or for whichever run finishes first; record its outcome.
wait_run() {
    local name="${1:-}" rc=0 n
    # Poll rather than `wait -n`: with many runs, `wait -n` also returned for children that
    # are not runs (process substitutions), and the disruptive run then started too early.
    while [[ -z "$name" ]]; do
        for n in "${!PIDS[@]}"; do
            if ! kill -0 "${PIDS[$n]}" 2>/dev/null; then
                name="$n"
                break
            fi
        done
        [[ -n "$name" ]] || sleep 1
    done
    wait "${PIDS[$name]}" || rc=$?
    unset "PIDS[$name]"
    DURATION[$name]=$((SECONDS - START[$name]))
    if [[ $rc -eq 5 ]] && run_tolerates_empty "$name"; then
        echo "# exit 5 (no tests collected) counted as success" >>"$LOGS/$name.log"
        rc=0
    fi
    RC[$name]=$rc
}

# reap_leftovers: a run killed by its timeout leaves the worker and beat processes its tests
# spawned (each in its own session) holding database connections: stop them before the
# disruptive run, which needs the test database to itself.
reap_leftovers() {
    local name
    for name in "${!RC[@]}"; do
        if [[ ${RC[$name]} -eq 124 || ${RC[$name]} -eq 137 ]]; then
            log "a run timed out: stopping the workers and beats it left behind"
            pkill -KILL -f "$ROOT/manage.py (runworker|runbeat)" || true
            return
        fi
    done
}

stop_runs() {
    local name
    for name in "${!PIDS[@]}"; do kill -TERM "${PIDS[$name]}" 2>/dev/null || true; done
}
trap 'stop_runs; exit 130' INT
trap 'stop_runs; exit 143' TERM

summary_line() {
    local line
    line="$(grep -E '^=+ .* in [0-9.]+s.* =+$' "$LOGS/$1.log" | tail -n 1 || true)"
    line="${line#"${line%%[!=]*}"}"
    line="${line%"${line##*[!=]}"}"
    line="${line# }"
    line="${line% }"
    if [[ -z "$line" ]]; then
        case "${RC[$1]}" in
            124 | 137) line="TIMEOUT" ;;
            *) line="(no pytest summary; see log)" ;;
        esac
    fi
    echo "$line"
}

main() {
    local name failed=() parallel=()
    ensure_venv
    ensure_row_venvs
    ensure_services
    mkdir -p "$LOGS"
    rm -f "$LOGS"/*.log

    log "makemigrations --check (sqlite)"
    env -u REDIS_URL -u TEST_DATABASE_NAME DATABASE_URL="$SQLITE_URL" \
        "$PY" manage.py makemigrations --check --dry-run \
        || die "makemigrations --check failed (missing migrations? run 'make migrations')"
    log "ruff check"
    "$ROOT/.venv/bin/ruff" check . || die "ruff check failed (try 'make format')"

    for name in sqlite browser postgresql postgresql-processes performance mariadb \
        postgresql+redis redis-broker django60 django52 django52-postgresql faults packaging; do
        selected "$name" && parallel+=("$name")
    done
    if [[ ${#parallel[@]} -gt 0 ]]; then
        log "pytest in parallel: ${parallel[*]} (logs in var/test-logs/)"
        for name in "${parallel[@]}"; do start_run "$name" "${TEST_RUN_TIMEOUT:-840}"; done
        for name in "${parallel[@]}"; do wait_run; done
        reap_leftovers
    fi
    if selected disruptive; then
        log "pytest -m disruptive alone (postgresql)"
        start_run disruptive "${TEST_DISRUPTIVE_TIMEOUT:-240}"
        wait_run disruptive
        parallel+=(disruptive)
    fi

    echo
    printf '%-18s %-60s %5s %8s\n' RUN "PYTEST SUMMARY" EXIT TIME
    for name in "${parallel[@]}"; do
        printf '%-18s %-60s %5s %7ss\n' "$name" "$(summary_line "$name")" "${RC[$name]}" \
            "${DURATION[$name]}"
        [[ ${RC[$name]} -eq 0 ]] || failed+=("$name")
    done
    echo
    for name in ${failed[@]+"${failed[@]}"}; do
        printf '\033[1;31m----- %s failed (exit %s): tail of var/test-logs/%s.log -----\033[0m\n' \
            "$name" "${RC[$name]}" "$name"
        tail -n 80 "$LOGS/$name.log"
        echo
    done
    if [[ ${#failed[@]} -gt 0 ]]; then
        printf '\033[1;31mFAILED: %s\033[0m\n' "${failed[*]}"
        return 1
    fi
    printf '\033[1;32mOK: %s\033[0m\n' "${parallel[*]}"
}

main
