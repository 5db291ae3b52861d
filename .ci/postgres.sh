#!/usr/bin/env bash
# Start a throw-away PostgreSQL server (Debian's packages) for the distributed-search tests and print its URL.
# Usage: eval "$(bash .ci/postgres.sh)"   -> exports EDGESKD_TEST_POSTGRES_URL
set -euo pipefail
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
port=${EDGESKD_PG_PORT:-55432}
dir=${EDGESKD_PG_DIR:-/tmp/edgeskd-pg-$port}
url="postgresql://edgeskd:edgeskd@127.0.0.1:$port/edgeskd"
if ! su postgres -c "$bindir/pg_isready -h 127.0.0.1 -p $port" >/dev/null 2>&1; then
  rm -rf "$dir" && mkdir -p "$dir" && chown postgres "$dir"
  su postgres -c "$bindir/initdb -D $dir/data -A trust -U postgres" >/dev/null
  su postgres -c "$bindir/pg_ctl -D $dir/data -l $dir/log -o '-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=200' -w start" >/dev/null
  su postgres -c "$bindir/psql -h 127.0.0.1 -p $port -U postgres -qc \"CREATE ROLE edgeskd LOGIN PASSWORD 'edgeskd'\""
  su postgres -c "$bindir/psql -h 127.0.0.1 -p $port -U postgres -qc 'CREATE DATABASE edgeskd OWNER edgeskd'"
fi
echo "export EDGESKD_TEST_POSTGRES_URL=$url"
