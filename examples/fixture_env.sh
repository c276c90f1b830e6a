# shellcheck shell=bash disable=SC2153
# Sourced (`. examples/fixture_env.sh`): maps the local fixtures' settings (spec/support/fixtures.sh,
# ${LAKEBASE_RUN_DIR:-spec/support/run}/env.sh) to the SPEC §2 variables, as a real deployment sets
# them. OAuth M2M: the Postgres role is the service principal's client id, so PGUSER is left unset
# and falls back to DATABRICKS_CLIENT_ID. Nothing is printed (the client secret is one of them).
if [ -z "${LAKEBASE_TEST_PGPORT:-}" ]; then
  # shellcheck disable=SC1091
  . "${LAKEBASE_RUN_DIR:-spec/support/run}/env.sh" || return 1
fi
export PGHOST=$LAKEBASE_TEST_PGHOST PGPORT=$LAKEBASE_TEST_PGPORT PGDATABASE=$LAKEBASE_TEST_PGDATABASE
export PGSSLMODE=require PGSSLROOTCERT=$LAKEBASE_TEST_SSLROOTCERT
export LAKEBASE_ENDPOINT=$LAKEBASE_TEST_ENDPOINT DATABRICKS_HOST=$LAKEBASE_TEST_DATABRICKS_HOST
export DATABRICKS_CLIENT_ID=$LAKEBASE_TEST_CLIENT_ID DATABRICKS_CLIENT_SECRET=$LAKEBASE_TEST_CLIENT_SECRET
unset PGUSER PGPASSWORD DATABRICKS_TOKEN DATABRICKS_CONFIG_PROFILE
