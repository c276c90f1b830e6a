#!/usr/bin/env bash
# Test fixtures: a throwaway PostgreSQL 15 (TLS from a test CA, scram-sha-256) and the fake Databricks
# workspace (spec/support/fake_workspace.py), both on 127.0.0.1 with random free ports.
# The app role (the Databricks identity) logs in as on Lakebase: PostgreSQL checks each login through
# PAM (/etc/pam.d/lakebase-test-<id>, written at start and removed at stop; needs root), whose
# pam_exec runs spec/support/pam_check, which asks the fake whether that credential is valid now.
# Every other role has a native scram password.
#   usage: fixtures.sh start|stop|status|restart
# Run dir: ${LAKEBASE_RUN_DIR:-spec/support/run} (relative paths are relative to the repo root). `start`
# writes <run dir>/env.sh with the LAKEBASE_TEST_* variables; `status` exits 0 only when both are up.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root" || exit 1

run_dir=${LAKEBASE_RUN_DIR:-spec/support/run}
case "$run_dir" in /*) ;; *) run_dir="$root/$run_dir" ;; esac
pgbin=${LAKEBASE_TEST_PGBIN_OVERRIDE:-/usr/lib/postgresql/15/bin}
state="$run_dir/state.sh"
env_file="$run_dir/env.sh"

die() {
  echo "fixtures: $*" >&2
  # Show what the failing part said: the logs are the only way to see why in CI.
  for f in "$run_dir/postgres.log" "$run_dir/workspace.log" "$run_dir/setup.log"; do
    [ -s "$f" ] && { echo "---- $f (last 30 lines)" >&2; tail -n 30 "$f" >&2; }
  done
  exit 1
}

# PostgreSQL refuses to run as root: as root, run it as the postgres OS user; otherwise as ourselves.
if [ "$(id -u)" = 0 ]; then
  pg_user=postgres
  as_postgres() { runuser -u postgres -- "$@"; }
else
  pg_user=$(id -un)
  as_postgres() { "$@"; }
fi

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

secret() { python3 -c "import secrets; print('$1' + secrets.token_hex($2))"; }

# state.sh holds PGTMP, PGDATA, PGPORT, PAM_SERVICE, WS_PORT, WS_PID (no secrets).
# shellcheck disable=SC1090
load_state() { [ -f "$state" ] && . "$state"; }

pg_running() {
  [ -n "${PGDATA:-}" ] && [ -d "$PGDATA" ] && as_postgres "$pgbin/pg_ctl" status -D "$PGDATA" >/dev/null 2>&1
}

ws_running() {
  [ -n "${WS_PID:-}" ] && kill -0 "$WS_PID" 2>/dev/null &&
    curl -fsS -m 2 "http://127.0.0.1:$WS_PORT/_test/counters" >/dev/null 2>&1
}

cmd_status() {
  load_state || { echo "fixtures: not running (no state in $run_dir)"; return 1; }
  local ok=0
  if pg_running; then echo "postgres: running on 127.0.0.1:$PGPORT ($PGDATA)"; else echo "postgres: down"; ok=1; fi
  if ws_running; then echo "workspace: running on 127.0.0.1:$WS_PORT (pid $WS_PID)"; else echo "workspace: down"; ok=1; fi
  [ -f "$env_file" ] || { echo "env.sh: missing"; ok=1; }
  return $ok
}

cmd_stop() {
  load_state || { echo "fixtures: nothing to stop"; return 0; }
  if [ -n "${WS_PID:-}" ] && kill -0 "$WS_PID" 2>/dev/null; then
    kill "$WS_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$WS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$WS_PID" 2>/dev/null || true
  fi
  # A hot standby a spec started (spec/support/standby.sh) and could not stop lives in PGTMP too.
  if [ -n "${PGTMP:-}" ] && [ -f "$PGTMP/standby/postmaster.pid" ]; then
    as_postgres "$pgbin/pg_ctl" stop -D "$PGTMP/standby" -m immediate -w >/dev/null 2>&1 || true
  fi
  # The PAM service files of the primary and of the standby (standby.sh adds "-ro").
  case "${PAM_SERVICE:-}" in lakebase-test-*) rm -f "/etc/pam.d/$PAM_SERVICE" "/etc/pam.d/$PAM_SERVICE-ro" ;; esac
  if [ -n "${PGDATA:-}" ] && [ -d "$PGDATA" ]; then
    as_postgres "$pgbin/pg_ctl" stop -D "$PGDATA" -m immediate -w >/dev/null 2>&1 || true
    # A postmaster that pg_ctl could not reach (e.g. pid file gone): kill it by its own pid.
    if [ -f "$PGDATA/postmaster.pid" ]; then
      pid=$(head -1 "$PGDATA/postmaster.pid" 2>/dev/null)
      if [ -n "$pid" ]; then kill -9 "$pid" 2>/dev/null || true; fi
    fi
  fi
  # Keep the logs for a post-mortem, drop the copies in the temp dir and everything secret.
  [ -n "${PGTMP:-}" ] && [ -f "$PGTMP/postgres.log" ] && cp "$PGTMP/postgres.log" "$run_dir/postgres.log" 2>/dev/null
  case "${PGTMP:-}" in /tmp/lakebase-pg.*) rm -rf "$PGTMP" ;; esac
  rm -f "$env_file" "$state" "$run_dir/secrets.json"
  rm -rf "$run_dir/pki"
  echo "fixtures: stopped"
}

make_pki() {
  local d=$1
  mkdir -p "$d" && chmod 755 "$d"
  (
    cd "$d" || exit 1
    openssl req -x509 -new -nodes -newkey rsa:2048 -sha256 -days 30 \
      -keyout ca.key -out ca.pem -subj "/CN=lakebase test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" &&
    openssl req -new -nodes -newkey rsa:2048 -sha256 -keyout server.key -out server.csr -subj "/CN=localhost" &&
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' >server.ext &&
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 -sha256 \
      -extfile server.ext -out server.pem
  ) >>"$run_dir/setup.log" 2>&1 || die "could not create the test PKI"
  chmod 644 "$d/ca.pem" "$d/server.pem"
}

cmd_start() {
  if load_state && pg_running && ws_running && [ -f "$env_file" ]; then
    echo "fixtures: already running (postgres 127.0.0.1:$PGPORT, workspace 127.0.0.1:$WS_PORT)"
    return 0
  fi
  # Leftovers of a crashed run: clean them first.
  [ -f "$state" ] && cmd_stop >/dev/null 2>&1
  unset PGTMP PGDATA PGPORT PAM_SERVICE WS_PORT WS_PID

  [ -x "$pgbin/initdb" ] || die "PostgreSQL binaries not found in $pgbin (install postgresql)"
  id "$pg_user" >/dev/null 2>&1 || die "no '$pg_user' OS user (install postgresql)"
  [ -w /etc/pam.d ] || die "cannot write /etc/pam.d: the app role's logins are checked through PAM, run as root"
  mkdir -p "$run_dir" || die "cannot create $run_dir"
  : >"$run_dir/setup.log"; rm -f "$run_dir/postgres.log" "$run_dir/workspace.log"

  # PostgreSQL refuses root: its files live in a temp dir owned by postgres.
  PGTMP=$(mktemp -d /tmp/lakebase-pg.XXXXXX) || die "mktemp failed"
  chmod 700 "$PGTMP"
  PGDATA="$PGTMP/data"
  PGPORT=$(free_port) || die "no free port"
  # libpam lowercases service names: a lowercase name of its own, unique on this machine
  PAM_SERVICE="lakebase-test-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  [ ! -e "/etc/pam.d/$PAM_SERVICE" ] || die "PAM service $PAM_SERVICE exists already"
  echo "PGTMP='$PGTMP'; PGDATA='$PGDATA'; PGPORT=$PGPORT; PAM_SERVICE='$PAM_SERVICE'" >"$state"

  make_pki "$run_dir/pki"
  cp "$run_dir/pki/server.pem" "$run_dir/pki/ca.pem" "$PGTMP/"
  cp "$run_dir/pki/server.key" "$PGTMP/server.key"
  chmod 600 "$PGTMP/server.key"
  chown -R "$pg_user": "$PGTMP"

  local admin_pw client_id client_secret pat read_endpoint=projects/p/branches/b/endpoints/ro
  admin_pw=$(secret adm "16")
  client_id=$(python3 -c 'import uuid; print(uuid.uuid4())')
  client_secret=$(secret dose "20")
  pat=$(secret dapi "16")

  as_postgres "$pgbin/initdb" -D "$PGDATA" -U postgres -E UTF8 --locale=C.UTF-8 \
    --auth-local=peer --auth-host=scram-sha-256 >>"$run_dir/setup.log" 2>&1 ||
    as_postgres "$pgbin/initdb" -D "$PGDATA" -U postgres -E UTF8 --no-locale \
      --auth-local=peer --auth-host=scram-sha-256 >>"$run_dir/setup.log" 2>&1 || die "initdb failed"

  cat >>"$PGDATA/postgresql.conf" <<EOF

# lakebase test fixture
listen_addresses = '127.0.0.1'
port = $PGPORT
unix_socket_directories = '$PGTMP'
fsync = off
full_page_writes = off
max_connections = 200
shared_buffers = 64MB
password_encryption = 'scram-sha-256'
ssl = on
ssl_cert_file = '$PGTMP/server.pem'
ssl_key_file = '$PGTMP/server.key'
ssl_ca_file = '$PGTMP/ca.pem'
log_min_messages = warning
log_connections = off
EOF
  # PAM gets the password in clear from the client: TLS only, as on Lakebase.
  cat >"$PGDATA/pg_hba.conf" <<EOF
# lakebase test fixture: peer for bootstrapping as the OS user running PostgreSQL; the app role
# through PAM (the fake workspace checks its credential), passwords everywhere else.
local   all  postgres                 peer map=boot
local   replication postgres          peer map=boot
hostssl all  "$client_id" 127.0.0.1/32 pam pamservice=$PAM_SERVICE
local   all  all                      scram-sha-256
hostssl all  all       127.0.0.1/32   scram-sha-256
host    all  all       127.0.0.1/32   scram-sha-256
EOF
  echo "boot $pg_user postgres" >>"$PGDATA/pg_ident.conf"
  chown "$pg_user": "$PGDATA/postgresql.conf" "$PGDATA/pg_hba.conf" "$PGDATA/pg_ident.conf"

  # The free port may be taken by someone else before PostgreSQL binds it: then try another one.
  local attempt started_pg=0
  for attempt in 1 2 3; do
    if as_postgres "$pgbin/pg_ctl" start -D "$PGDATA" -w -t 60 -l "$PGTMP/postgres.log" >>"$run_dir/setup.log" 2>&1; then
      started_pg=1; break
    fi
    grep -q "could not bind\|could not create any TCP/IP sockets" "$PGTMP/postgres.log" 2>/dev/null || break
    PGPORT=$(free_port) || break
    sed -i "s/^port = .*/port = $PGPORT/" "$PGDATA/postgresql.conf"
    echo "PGTMP='$PGTMP'; PGDATA='$PGDATA'; PGPORT=$PGPORT; PAM_SERVICE='$PAM_SERVICE'" >"$state"
    echo "fixtures: port taken, PostgreSQL retries on $PGPORT (attempt $((attempt + 1)))" >>"$run_dir/setup.log"
  done
  [ $started_pg = 1 ] || { cp "$PGTMP/postgres.log" "$run_dir/postgres.log" 2>/dev/null; die "PostgreSQL did not start"; }
  ln -sf "$PGTMP/postgres.log" "$run_dir/postgres.log"

  # Secrets go through stdin, never the command line.
  as_postgres psql -X -q -v ON_ERROR_STOP=1 -h "$PGTMP" -p "$PGPORT" -U postgres -d postgres >>"$run_dir/setup.log" 2>&1 <<EOF || die "bootstrap SQL failed"
CREATE ROLE lakebase_admin LOGIN SUPERUSER PASSWORD '$admin_pw';
CREATE ROLE "$client_id" LOGIN;
CREATE DATABASE lakebase_test;
GRANT CREATE, CONNECT, TEMPORARY ON DATABASE lakebase_test TO "$client_id";
\\c lakebase_test
ALTER SCHEMA public OWNER TO "$client_id";
EOF

  local up=0
  for attempt in 1 2 3; do
    WS_PORT=$(free_port) || die "no free port"
    # The fake reads its secrets from the environment (not argv, not stdout).
    FAKE_WS_PORT=$WS_PORT FAKE_WS_LOG="$run_dir/workspace.log" FAKE_WS_READ_ENDPOINT="$read_endpoint" \
      FAKE_WS_APP_ROLE="$client_id" FAKE_WS_CLIENT_ID="$client_id" FAKE_WS_CLIENT_SECRET="$client_secret" \
      FAKE_WS_PAT="$pat" \
      setsid python3 "$here/fake_workspace.py" </dev/null >>"$run_dir/workspace.log" 2>&1 &
    WS_PID=$!
    echo "WS_PORT=$WS_PORT; WS_PID=$WS_PID" >>"$state"
    for _ in $(seq 1 100); do
      if curl -fsS -m 1 "http://127.0.0.1:$WS_PORT/_test/counters" >/dev/null 2>&1; then up=1; break; fi
      kill -0 "$WS_PID" 2>/dev/null || break
      sleep 0.1
    done
    [ $up = 1 ] && break
    kill "$WS_PID" 2>/dev/null
    # only a port someone else took is worth another try
    grep -q "Address already in use" "$run_dir/workspace.log" || break
    echo "fixtures: port $WS_PORT taken, the workspace retries (attempt $((attempt + 1)))" >>"$run_dir/setup.log"
  done
  [ $up = 1 ] || die "the fake workspace did not come up on 127.0.0.1:$WS_PORT"

  # The app role's login check: PAM runs pam_check as the postgres OS user (libpam reads this file
  # at each login, so it may come after the server started).
  printf '%s\n' "# lakebase test fixture ($PGTMP): the app role's logins, checked by the fake workspace" \
    "auth required pam_exec.so expose_authtok quiet $here/pam_check http://127.0.0.1:$WS_PORT rw" \
    "account required pam_permit.so" >"/etc/pam.d/$PAM_SERVICE" || die "cannot write /etc/pam.d/$PAM_SERVICE"

  # Proof that the whole chain works before anyone relies on it: TLS + scram as the admin.
  PGPASSWORD=$admin_pw PGSSLMODE=verify-full PGSSLROOTCERT="$run_dir/pki/ca.pem" PGCONNECT_TIMEOUT=10 \
    psql -X -q -A -t -h localhost -p "$PGPORT" -U lakebase_admin -d lakebase_test -c 'select 1' \
    >>"$run_dir/setup.log" 2>&1 || die "cannot connect over TLS as lakebase_admin"
  # ... and as the app role with a credential from the fake, through PAM (secrets on stdin only).
  local cred
  cred=$(printf 'header = "Authorization: Bearer %s"\n' "$pat" |
    curl -fsS -m 10 -K - -H 'Content-Type: application/json' \
      --data-binary '{"endpoint": "projects/p/branches/b/endpoints/e"}' \
      "http://127.0.0.1:$WS_PORT/api/2.0/postgres/credentials" 2>>"$run_dir/setup.log" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') || die "the fake issued no credential"
  PGPASSWORD=$cred PGSSLMODE=verify-full PGSSLROOTCERT="$run_dir/pki/ca.pem" PGCONNECT_TIMEOUT=10 \
    psql -X -q -A -t -h localhost -p "$PGPORT" -U "$client_id" -d lakebase_test -c 'select 1' \
    >>"$run_dir/setup.log" 2>&1 || die "cannot log in as the app role through PAM"

  umask 077
  cat >"$env_file.tmp" <<EOF
# Generated by spec/support/fixtures.sh start: test-only values, removed by stop.
export LAKEBASE_TEST_PGHOST=localhost
export LAKEBASE_TEST_PGPORT=$PGPORT
export LAKEBASE_TEST_PGDATABASE=lakebase_test
export LAKEBASE_TEST_PGUSER='$client_id'
export LAKEBASE_TEST_SSLROOTCERT='$run_dir/pki/ca.pem'
export LAKEBASE_TEST_DATABRICKS_HOST=http://127.0.0.1:$WS_PORT
export LAKEBASE_TEST_WORKSPACE_PORT=$WS_PORT
export LAKEBASE_TEST_ENDPOINT=projects/p/branches/b/endpoints/e
export LAKEBASE_TEST_READ_ENDPOINT=$read_endpoint
export LAKEBASE_TEST_PAM_SERVICE=$PAM_SERVICE
export LAKEBASE_TEST_TOKEN='$pat'
export LAKEBASE_TEST_CLIENT_ID='$client_id'
export LAKEBASE_TEST_CLIENT_SECRET='$client_secret'
export LAKEBASE_TEST_ADMIN_USER=lakebase_admin
export LAKEBASE_TEST_ADMIN_PASSWORD='$admin_pw'
export LAKEBASE_TEST_PGDATA='$PGDATA'
export LAKEBASE_TEST_PGTMP='$PGTMP'
export LAKEBASE_TEST_PGSOCKET='$PGTMP'
export LAKEBASE_TEST_PGLOG='$PGTMP/postgres.log'
export LAKEBASE_TEST_RUNDIR='$run_dir'
export LAKEBASE_TEST_PGBIN='$pgbin'
export LAKEBASE_TEST_PGOSUSER='$pg_user'
EOF
  mv "$env_file.tmp" "$env_file"
  echo "fixtures: postgres on 127.0.0.1:$PGPORT (TLS; scram, the app role through PAM), workspace on http://127.0.0.1:$WS_PORT; env in $env_file"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  restart) cmd_stop >/dev/null; cmd_start ;;
  *) echo "usage: $0 start|stop|status|restart" >&2; exit 2 ;;
esac
