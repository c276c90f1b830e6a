#!/usr/bin/env bash
# A real streaming replica of the test PostgreSQL, started only by the specs that need it:
#   spec/support/standby.sh start    pg_basebackup -R of the primary, started as a hot standby on a
#                                    free loopback port (same TLS files, same roles and passwords:
#                                    they replicate); prints the port
#   spec/support/standby.sh halt     stops the standby's postmaster, keeps its data (a reader that is down)
#   spec/support/standby.sh resume   starts it again on the same port
#   spec/support/standby.sh stop     stops it and removes its data
# Needs the fixtures' LAKEBASE_TEST_* variables. The data lives in $LAKEBASE_TEST_PGTMP/standby,
# which fixtures.sh stop cleans up too.
set -euo pipefail
cmd=${1:?usage: standby.sh start|halt|resume|stop}
pgbin=${LAKEBASE_TEST_PGBIN:?fixtures not loaded}
tmp=${LAKEBASE_TEST_PGTMP:?fixtures not loaded}
dir="$tmp/standby"

if [ "$(id -u)" = 0 ]; then
  as_postgres() { runuser -u postgres -- "$@"; }
else
  as_postgres() { "$@"; }
fi

start_pm() {
  as_postgres "$pgbin/pg_ctl" start -D "$dir" -w -t 60 -l "$tmp/standby.log" >/dev/null
}

case "$cmd" in
  start)
    if [ -f "$dir/postmaster.pid" ]; then as_postgres "$pgbin/pg_ctl" stop -D "$dir" -m immediate -w >/dev/null 2>&1 || true; fi
    as_postgres rm -rf "$dir"
    # Over the primary's Unix socket as the postgres OS user (peer): no password anywhere.
    as_postgres "$pgbin/pg_basebackup" -D "$dir" -R -X stream -c fast -h "$tmp" -p "$LAKEBASE_TEST_PGPORT" -U postgres >/dev/null
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    as_postgres sh -c "printf '\n# lakebase test standby\nport = %s\nhot_standby = on\n' $port >>'$dir/postgresql.conf'"
    start_pm
    echo "$port"
    ;;
  halt)
    as_postgres "$pgbin/pg_ctl" stop -D "$dir" -m fast -w >/dev/null
    ;;
  resume)
    start_pm
    ;;
  stop)
    if [ -f "$dir/postmaster.pid" ]; then as_postgres "$pgbin/pg_ctl" stop -D "$dir" -m immediate -w >/dev/null 2>&1 || true; fi
    as_postgres rm -rf "$dir"
    ;;
  *) echo "usage: standby.sh start|halt|resume|stop" >&2; exit 2 ;;
esac
