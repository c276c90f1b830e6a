#!/usr/bin/env bash
# A second throwaway PostgreSQL for spec/tls_spec.lua: TLS with a certificate from ANOTHER test CA
# ("lakebase other CA") that names only the host db.other.test (so connecting as localhost or
# 127.0.0.1 is a host-name mismatch). Trust authentication: the spec only checks the TLS handshake,
# and its positive cases (sslmode=prefer) need no secret.
#   usage: tls_server.sh start|stop [name] [plain]
# `plain`: the server has TLS turned off (for sslmode=require must not fall back to plaintext).
# Lives in <run dir>/tls-<name> (run dir: ${LAKEBASE_RUN_DIR:-spec/support/run}; name: default
# "default", give each concurrent user its own); `start` prints
#   TLS_PORT=<port> TLS_CA=<other CA pem>
# on stdout (one line) and exits 0, or exits nonzero with the reason on stderr.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root" || exit 1

run_dir=${LAKEBASE_RUN_DIR:-spec/support/run}
case "$run_dir" in /*) ;; *) run_dir="$root/$run_dir" ;; esac
pgbin=${LAKEBASE_TEST_PGBIN_OVERRIDE:-/usr/lib/postgresql/15/bin}
name=${2:-default}
ssl=on
[ "${3:-}" = plain ] && ssl=off
case "$name" in *[!A-Za-z0-9_-]*|"") echo "tls_server: bad name" >&2; exit 2 ;; esac
dir="$run_dir/tls-$name"
state="$dir/state.sh"

if [ "$(id -u)" = 0 ]; then
  pg_user=postgres
  as_postgres() { runuser -u postgres -- "$@"; }
else
  pg_user=$(id -un)
  as_postgres() { "$@"; }
fi

die() {
  echo "tls_server: $*" >&2
  [ -s "$dir/setup.log" ] && tail -n 20 "$dir/setup.log" >&2
  exit 1
}

cmd_stop() {
  [ -f "$state" ] || return 0
  # shellcheck disable=SC1090
  . "$state"
  if [ -n "${PGDATA:-}" ] && [ -d "$PGDATA" ]; then
    as_postgres "$pgbin/pg_ctl" stop -D "$PGDATA" -m immediate -w >/dev/null 2>&1 || true
    if [ -f "$PGDATA/postmaster.pid" ]; then
      pid=$(head -1 "$PGDATA/postmaster.pid" 2>/dev/null)
      if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null; fi
    fi
  fi
  case "${PGTMP:-}" in /tmp/lakebase-tls.*) rm -rf "$PGTMP" ;; esac
  rm -rf "$dir"
}

cmd_start() {
  cmd_stop
  [ -x "$pgbin/initdb" ] || die "PostgreSQL binaries not found in $pgbin"
  mkdir -p "$dir" || die "cannot create $dir"
  : >"$dir/setup.log"
  (
    cd "$dir" || exit 1
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 2 \
      -keyout ca.key -out ca.pem -subj "/CN=lakebase other CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout server.key -out server.csr \
      -subj "/CN=db.other.test" &&
    printf 'subjectAltName=DNS:db.other.test\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -sha256 \
      -extfile server.ext -out server.pem
  ) >>"$dir/setup.log" 2>&1 || die "could not create the other CA"
  chmod 644 "$dir/ca.pem"

  local port tmp
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()') ||
    die "no free port"
  tmp=$(mktemp -d /tmp/lakebase-tls.XXXXXX) || die "mktemp failed"
  chmod 700 "$tmp"
  echo "PGTMP='$tmp'; PGDATA='$tmp/data'; PGPORT=$port" >"$state"
  cp "$dir/server.pem" "$dir/server.key" "$tmp/"
  chmod 600 "$tmp/server.key"
  chown -R "$pg_user": "$tmp"

  as_postgres "$pgbin/initdb" -D "$tmp/data" -U postgres -E UTF8 --no-locale --auth=trust \
    >>"$dir/setup.log" 2>&1 || die "initdb failed"
  cat >>"$tmp/data/postgresql.conf" <<EOF

# lakebase tls_spec: a server whose certificate comes from another CA and names another host
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$tmp'
fsync = off
ssl = $ssl
ssl_cert_file = '$tmp/server.pem'
ssl_key_file = '$tmp/server.key'
max_connections = 20
shared_buffers = 16MB
EOF
  cat >"$tmp/data/pg_hba.conf" <<EOF
local   all  all                 trust
hostssl all  all  127.0.0.1/32   trust
host    all  all  127.0.0.1/32   trust
EOF
  chown "$pg_user": "$tmp/data/postgresql.conf" "$tmp/data/pg_hba.conf"
  as_postgres "$pgbin/pg_ctl" start -D "$tmp/data" -w -t 60 -l "$tmp/postgres.log" \
    >>"$dir/setup.log" 2>&1 || { cat "$tmp/postgres.log" >>"$dir/setup.log" 2>/dev/null; die "PostgreSQL did not start"; }
  echo "TLS_PORT=$port TLS_CA=$dir/ca.pem"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  *) echo "usage: $0 start|stop [name]" >&2; exit 2 ;;
esac
