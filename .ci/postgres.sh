# Start a throw-away PostgreSQL cluster on 127.0.0.1 and export ICSYNC_TEST_PG_URL.
# Sourced by .ci/run; safe to source by hand for local runs (then `stop_postgres` ends it).
# The port is $ICSYNC_PG_PORT (default 55432), or the next free one when that is taken.
# tests/fixtures/postgres.py does the same by itself when ICSYNC_TEST_PG_URL is not set.

_pg_port_busy() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

start_postgres() {
  local bindir port data owner tries=0
  bindir=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)") || return 1
  [ -x "$bindir/initdb" ] || return 1
  port=${ICSYNC_PG_PORT:-55432}
  while _pg_port_busy "$port"; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || { echo "no free port near ${ICSYNC_PG_PORT:-55432}"; return 1; }
    port=$((port + 1))
  done
  data=$(mktemp -d /tmp/icsync-pg.XXXXXX)
  owner=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    owner=postgres
    chown "$owner" "$data"
  fi
  local run=(env)
  [ "$owner" = "$(id -un)" ] || run=(runuser -u "$owner" --)
  "${run[@]}" "$bindir/initdb" -D "$data" -U icsync --auth=trust -E UTF8 --no-sync >/dev/null \
    || return 1
  "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $data -c fsync=off -c synchronous_commit=off -c max_connections=200" \
    start >/dev/null || { tail -n 20 "$data/server.log" 2>/dev/null; return 1; }
  export ICSYNC_TEST_PG_URL="postgresql+psycopg://icsync@127.0.0.1:$port/postgres"
  export ICSYNC_PG_DATA="$data" ICSYNC_PG_BIN="$bindir" ICSYNC_PG_OWNER="$owner"
  echo "PostgreSQL up: $ICSYNC_TEST_PG_URL"
}

stop_postgres() {
  [ -n "${ICSYNC_PG_DATA:-}" ] || return 0
  local run=(env)
  [ "${ICSYNC_PG_OWNER:-}" = "$(id -un)" ] || run=(runuser -u "$ICSYNC_PG_OWNER" --)
  "${run[@]}" "$ICSYNC_PG_BIN/pg_ctl" -D "$ICSYNC_PG_DATA" -m fast -w stop >/dev/null || true
  rm -rf "$ICSYNC_PG_DATA"
  unset ICSYNC_TEST_PG_URL ICSYNC_PG_DATA ICSYNC_PG_BIN ICSYNC_PG_OWNER
}
