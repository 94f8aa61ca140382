#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the tests and print the URL to use, as a shell line:
#
#   eval "$(.ci/postgres.sh)"          # sets SWEEPER_TEST_PG_URL (what tests/conftest.py reads)
#   .ci/postgres.sh --stop             # stops the server (the data directory stays for the next start)
#   .ci/postgres.sh --purge            # stops it and deletes the data directory
#
# Idempotent: a second call reuses the running server (or restarts the stopped cluster) and prints the same line.
# Installs the server with apt-get when initdb/pg_ctl are missing (needs root). Runs the server as a non-root user:
# the current user, or when run as root the `postgres` user (created with useradd if missing; override with
# SWEEPER_PG_OS_USER; an existing cluster keeps its owner). Listens on 127.0.0.1 only, on a free port, with a unix socket in the data folder.
# Everything but the export line goes to stderr.
#
# Environment: SWEEPER_PG_DIR   (default ${TMPDIR:-/tmp}/sweeper-ci-pg)  cluster, socket, log, port and password
#              SWEEPER_PG_ROLE  (default sweeper)  the role the tests connect as (LOGIN CREATEDB, with password)
#              SWEEPER_PG_DURABLE=1  keep fsync on (default off: a test server, faster CREATE DATABASE); use it for
#                                    benchmarks. Read when the server starts.
set -euo pipefail
cd /  # the server's OS user may not be allowed into the caller's directory

BASE="$(realpath -m "${SWEEPER_PG_DIR:-${TMPDIR:-/tmp}/sweeper-ci-pg}")"
DATA="$BASE/data"
SOCK="$BASE/socket"
LOG="$BASE/server.log"
ROLE="${SWEEPER_PG_ROLE:-sweeper}"

say() { echo "postgres.sh: $*" >&2; }
die() { say "error: $*"; exit 1; }

find_bindir() {
  local d
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then echo "$d"; return 0; fi
  done
  return 1
}

BINDIR="$(find_bindir || true)"
if [[ -z "$BINDIR" ]]; then
  [[ "$(id -u)" == 0 ]] || die "initdb/pg_ctl not found and not root: install PostgreSQL (apt-get install postgresql)"
  say "installing PostgreSQL with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BINDIR="$(find_bindir)" || die "PostgreSQL installed but initdb/pg_ctl not found"
fi

# The OS user that owns the cluster: never root.
if [[ "$(id -u)" == 0 ]]; then
  PGUSER_OS="${SWEEPER_PG_OS_USER:-postgres}"
  if [[ -f "$DATA/PG_VERSION" ]]; then PGUSER_OS="$(stat -c %U "$DATA")"; fi  # an existing cluster's owner
  if ! id "$PGUSER_OS" >/dev/null 2>&1; then
    say "creating OS user $PGUSER_OS"
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$PGUSER_OS"
  fi
  as_pg() { runuser -u "$PGUSER_OS" -- "$@"; }
else
  PGUSER_OS="$(id -un)"
  as_pg() { "$@"; }
fi

pg_ctl_() { as_pg "$BINDIR/pg_ctl" -D "$DATA" "$@"; }
running() { [[ -f "$DATA/PG_VERSION" ]] && pg_ctl_ status >/dev/null 2>&1; }

case "${1:-}" in
  --stop)
    if running; then pg_ctl_ -m fast -w stop >&2; else say "not running"; fi
    exit 0 ;;
  --purge)
    if running; then pg_ctl_ -m fast -w stop >&2; fi
    rm -rf "$BASE"; say "removed $BASE"
    exit 0 ;;
  "") ;;
  *) die "unknown argument $1 (use --stop or --purge)" ;;
esac

mkdir -p "$BASE"
chmod 700 "$BASE"
if [[ "$(id -u)" == 0 ]]; then chown "$PGUSER_OS" "$BASE"; fi

# Password and port are chosen once and kept, so repeated calls print the same URL.
if [[ ! -s "$BASE/password" ]]; then
  as_pg sh -c "umask 077; head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n' > '$BASE/password'"
fi
PASSWORD="$(cat "$BASE/password")"

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
EOF
}

if [[ ! -f "$DATA/PG_VERSION" ]]; then
  say "initialising a cluster in $DATA (as $PGUSER_OS, $BINDIR)"
  as_pg mkdir -p "$DATA" "$SOCK"
  as_pg "$BINDIR/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
    --encoding=UTF8 --locale=C.UTF-8 >&2 \
    || as_pg "$BINDIR/initdb" -D "$DATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
         --encoding=UTF8 --no-locale >&2
  rm -f "$BASE/port"
fi

if ! running; then
  PORT="$(cat "$BASE/port" 2>/dev/null || true)"
  if [[ -z "$PORT" ]] || (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then PORT="$(free_port)"; fi
  echo "$PORT" > "$BASE/port"
  as_pg mkdir -p "$SOCK"
  say "starting the server on 127.0.0.1:$PORT (log: $LOG)"
  if [[ "$(id -u)" == 0 ]]; then touch "$LOG"; chown "$PGUSER_OS" "$LOG"; fi
  OPTS="-c listen_addresses=127.0.0.1 -p $PORT -c unix_socket_directories=$SOCK -c max_connections=200"
  if [[ "${SWEEPER_PG_DURABLE:-0}" != 1 ]]; then
    OPTS="$OPTS -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  pg_ctl_ -l "$LOG" -w -t 60 -o "$OPTS" start >&2 \
    || { tail -n 30 "$LOG" >&2; die "server did not start"; }
fi
PORT="$(cat "$BASE/port")"

# The test role: may log in with a password over TCP and create (and drop its own) databases.
as_pg "$BINDIR/psql" -h "$SOCK" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -q >&2 <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE "$ROLE" LOGIN CREATEDB PASSWORD '$PASSWORD';
  ELSE
    ALTER ROLE "$ROLE" LOGIN CREATEDB PASSWORD '$PASSWORD';
  END IF;
END
\$\$;
SELECT 'CREATE DATABASE "$ROLE" OWNER "$ROLE"' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$ROLE')
\gexec
EOF

say "ready: postgresql://$ROLE:***@127.0.0.1:$PORT/$ROLE"
echo "export SWEEPER_TEST_PG_URL=postgresql+psycopg://$ROLE:$PASSWORD@127.0.0.1:$PORT/$ROLE"
