# Sourced by .ci/run: install Debian's postgresql if needed, start a throw-away server on
# 127.0.0.1 and export SLIMDA_NAS_TEST_POSTGRES_URL for the tests.
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
if [ -z "$(pg_bin)" ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) || return 1
fi
PG="$(pg_bin)"
PGDATA="$(mktemp -d /tmp/slimda-pg.XXXXXX)"
PGPORT="${PGPORT:-54329}"
chown -R postgres "$PGDATA" 2>/dev/null || true
as_pg() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi; }
as_pg "$PG/initdb -D $PGDATA -A trust -U postgres >/dev/null" || return 1
as_pg "$PG/pg_ctl -D $PGDATA -o '-p $PGPORT -k $PGDATA -c listen_addresses=127.0.0.1' -l $PGDATA/log -w start >/dev/null" || return 1
as_pg "$PG/createdb -h 127.0.0.1 -p $PGPORT -U postgres slimda" || return 1
export SLIMDA_NAS_TEST_POSTGRES_URL="postgresql+psycopg2://postgres@127.0.0.1:$PGPORT/slimda"
trap "as_pg '$PG/pg_ctl -D $PGDATA -m immediate stop' >/dev/null 2>&1; rm -rf '$PGDATA'" EXIT
echo "PostgreSQL ready at $SLIMDA_NAS_TEST_POSTGRES_URL"
