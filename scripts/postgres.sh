#!/usr/bin/env bash
# A private PostgreSQL cluster for the PostgreSQL backend's tests and benchmarks: in a temporary
# directory, on a loopback port, owned by an unprivileged user when run as root (initdb refuses
# root). Nothing of the machine's own PostgreSQL (if any) is touched.
#
#   eval "$(scripts/postgres.sh start)"   starts it; prints `export JOBSTORE_POSTGRES_URL=…`
#   scripts/postgres.sh restart            restarts it (fast: connections are dropped)
#   scripts/postgres.sh stop               stops it and deletes its directory
#
# Environment: JOBSTORE_PG_DIR (default /tmp/jobstore-postgres), JOBSTORE_PG_PORT (default 55432).
set -euo pipefail
dir=${JOBSTORE_PG_DIR:-/tmp/jobstore-postgres}
port=${JOBSTORE_PG_PORT:-55432}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [[ -z $bin ]]; then
    echo "PostgreSQL is not installed: apt-get install -y postgresql" >&2
    exit 1
fi
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
case ${1:-} in
start)
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        rm -rf "$dir" && mkdir -p "$dir"
        [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
        as_owner "$bin/initdb" -D "$dir/data" -U jobstore --auth=trust -E UTF8 --no-sync > "$dir.initdb.log" 2>&1 \
            || { cat "$dir.initdb.log" >&2; exit 1; }
    fi
    if ! as_owner "$bin/pg_ctl" -D "$dir/data" status > /dev/null 2>&1; then
        as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
            -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=200 -c fsync=on" \
            start > /dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
    fi
    echo "export JOBSTORE_POSTGRES_URL=postgres://jobstore@127.0.0.1:$port/postgres JOBSTORE_PG_DIR=$dir JOBSTORE_PG_PORT=$port"
    ;;
restart)
    # A fast restart (connections dropped, in-flight transactions rolled back), for the tests
    # that prove a server restart loses nothing.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m fast -w restart > /dev/null || { tail -20 "$dir/server.log" >&2; exit 1; }
    ;;
stop)
    if [[ -f $dir/data/PG_VERSION ]]; then as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop > /dev/null 2>&1 || true; fi
    rm -rf "$dir" "$dir.initdb.log"
    ;;
*)
    echo "usage: $0 start|restart|stop" >&2
    exit 2
    ;;
esac
