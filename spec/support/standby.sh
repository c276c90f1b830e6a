#!/usr/bin/env bash
# A real streaming replica of the test PostgreSQL, started only by the specs that need it:
#   spec/support/standby.sh start    pg_basebackup -R of the primary, started as a hot standby on a
#                                    free loopback port (same TLS files, same roles and passwords:
#                                    they replicate); prints the port. It is the read endpoint
#                                    (LAKEBASE_TEST_READ_ENDPOINT): the app role logs in with a
#                                    credential issued for that endpoint, checked through a PAM
#                                    service of its own (<primary's service>-ro, pam_check ... ro)
#   spec/support/standby.sh halt     stops the standby's postmaster, keeps its data (a reader that is down)
#   spec/support/standby.sh resume   starts it again on the same port
#   spec/support/standby.sh stop     stops it and removes its data and its PAM service file
# Needs the fixtures' LAKEBASE_TEST_* variables. The data lives in $LAKEBASE_TEST_PGTMP/standby,
# which fixtures.sh stop cleans up too.
set -euo pipefail
cmd=${1:?usage: standby.sh start|halt|resume|stop}
pgbin=${LAKEBASE_TEST_PGBIN:?fixtures not loaded}
tmp=${LAKEBASE_TEST_PGTMP:?fixtures not loaded}
dir="$tmp/standby"
pam_service=${LAKEBASE_TEST_PAM_SERVICE:?fixtures not loaded}-ro

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
    # The copied pg_hba.conf names the primary's PAM service: this compute checks logins as the
    # read endpoint.
    printf '%s\n' "# lakebase test standby ($dir): the app role's logins on the read endpoint" \
      "auth required pam_exec.so expose_authtok quiet $(cd "$(dirname "$0")" && pwd)/pam_check $LAKEBASE_TEST_DATABRICKS_HOST ro" \
      "account required pam_permit.so" >"/etc/pam.d/$pam_service"
    as_postgres sed -i "s/pamservice=$LAKEBASE_TEST_PAM_SERVICE\$/pamservice=$pam_service/" "$dir/pg_hba.conf"
    grep -q "pamservice=$pam_service\$" "$dir/pg_hba.conf" || { echo "standby: no PAM line in pg_hba.conf" >&2; exit 1; }
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
    rm -f "/etc/pam.d/$pam_service"
    ;;
  *) echo "usage: standby.sh start|halt|resume|stop" >&2; exit 2 ;;
esac
