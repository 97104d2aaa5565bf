# Start a throw-away PostgreSQL cluster on 127.0.0.1 and export ICSYNC_TEST_PG_URL.
# Sourced by .ci/run; safe to source by hand for local runs.
start_postgres() {
  local bindir port data owner
  bindir=$(dirname "$(compgen -G '/usr/lib/postgresql/*/bin/initdb' | sort -V | tail -n 1)") || return 1
  [ -x "$bindir/initdb" ] || return 1
  port=${ICSYNC_PG_PORT:-55432}
  data=$(mktemp -d /tmp/icsync-pg.XXXXXX)
  owner=$(id -un)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    owner=postgres
    chown "$owner" "$data"
  fi
  local run=(env)
  [ "$owner" = "$(id -un)" ] || run=(runuser -u "$owner" --)
  "${run[@]}" "$bindir/initdb" -D "$data" -U icsync --auth=trust -E UTF8 >/dev/null || return 1
  "${run[@]}" "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w \
    -o "-h 127.0.0.1 -p $port -k $data -c fsync=off -c max_connections=200" start >/dev/null || return 1
  export ICSYNC_TEST_PG_URL="postgresql+psycopg://icsync@127.0.0.1:$port/postgres"
  echo "PostgreSQL up: $ICSYNC_TEST_PG_URL"
}
