#!/usr/bin/env bash
# Make sure the local PostgreSQL, Redis and MariaDB answer, starting them if needed, and that the
# `test` database exists on PostgreSQL and MariaDB.
#   bash scripts/services.sh            # run it
#   source scripts/services.sh; ensure_services
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

_as_root() {
    if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

pg_up() {
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -h 127.0.0.1 -p 5432
    else
        psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAqc 'select 1' >/dev/null 2>&1
    fi
}

redis_up() {
    if command -v redis-cli >/dev/null 2>&1; then
        [[ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" == PONG ]]
    else
        # No client: speak RESP over bash's /dev/tcp.
        local reply
        reply="$(timeout 2 bash -c 'exec 3<>/dev/tcp/127.0.0.1/6379 && printf "PING\r\n" >&3 \
            && head -c 5 <&3' 2>/dev/null)" || return 1
        [[ "$reply" == "+PONG" ]]
    fi
}

_mysql_admin() {
    if command -v mariadb-admin >/dev/null 2>&1; then mariadb-admin "$@"; else mysqladmin "$@"; fi
}

_mysql() {
    if command -v mariadb >/dev/null 2>&1; then mariadb "$@"; else mysql "$@"; fi
}

mariadb_up() {
    _mysql_admin -h 127.0.0.1 -P 3306 -uroot --connect-timeout=2 ping >/dev/null 2>&1
}

pg_start() {
    # shellcheck disable=SC2046
    _as_root pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start
}

redis_start() {
    _as_root redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
}

mariadb_start() {
    _as_root start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}

# _ensure_one NAME: check NAME answers; if not, start it and wait up to 30 s.
_ensure_one() {
    local name="$1" i
    "${name}_up" && return 0
    log "$name is not answering; starting it"
    "${name}_start" || true
    for ((i = 0; i < 60; i++)); do
        "${name}_up" && { log "$name is up"; return 0; }
        sleep 0.5
    done
    printf '\n\033[1;41m  FATAL: %s did not answer within 30 s after starting it  \033[0m\n\n' \
        "$name" >&2
    exit 1
}

ensure_databases() {
    if [[ -z "$(psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -tAqc \
        "select 1 from pg_database where datname = 'test'")" ]]; then
        log "creating PostgreSQL database test"
        psql -h 127.0.0.1 -p 5432 -U postgres -d postgres -qc 'create database test' >/dev/null
    fi
    _mysql -h 127.0.0.1 -P 3306 -uroot \
        -e 'CREATE DATABASE IF NOT EXISTS test CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci'
}

ensure_services() {
    _ensure_one pg
    _ensure_one redis
    _ensure_one mariadb
    ensure_databases
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    set -euo pipefail
    ensure_services
    log "services OK: PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379, MariaDB 127.0.0.1:3306"
fi
