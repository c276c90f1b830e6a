#!/usr/bin/env bash
# A real PgBouncer (Debian's) in transaction mode in front of the test PostgreSQL, as Lakebase's
# pooled hosts are: spec/support/pgbouncer.sh start DIR | stop DIR
# `start` needs the fixtures' LAKEBASE_TEST_* variables, writes DIR/pgbouncer.ini, starts it on a
# free loopback port (as the postgres OS user when root: PgBouncer refuses root) and prints the port.
# Clients log in as LAKEBASE_TEST_ADMIN_USER with its native password, without TLS (loopback).
set -euo pipefail
cmd=${1:?usage: pgbouncer.sh start|stop DIR}
dir=${2:?usage: pgbouncer.sh start|stop DIR}

if [ "$(id -u)" = 0 ]; then
  as_owner() { runuser -u postgres -- "$@"; }
else
  as_owner() { "$@"; }
fi

case "$cmd" in
  start)
    mkdir -p "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    printf '"%s" "%s"\n' "$LAKEBASE_TEST_ADMIN_USER" "$LAKEBASE_TEST_ADMIN_PASSWORD" >"$dir/userlist.txt"
    cat >"$dir/pgbouncer.ini" <<INI
[databases]
* = host=127.0.0.1 port=$LAKEBASE_TEST_PGPORT
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL_SIZE:-3}
max_client_conn = 200
server_tls_sslmode = require
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
INI
    chmod 600 "$dir/userlist.txt"
    [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
    as_owner pgbouncer -d "$dir/pgbouncer.ini" >/dev/null
    for _ in $(seq 1 50); do
      python3 -c "import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(('127.0.0.1', $port)))" && break
      sleep 0.1
    done
    echo "$port"
    ;;
  stop)
    if [ -f "$dir/pgbouncer.pid" ]; then
      pid=$(cat "$dir/pgbouncer.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    ;;
  *) echo "usage: pgbouncer.sh start|stop DIR" >&2; exit 2 ;;
esac
