#!/usr/bin/env bash
# Installs what the tests need outside Python: PostgreSQL 15 (Debian's postgresql-15).
set -euo pipefail

pg_bin=/usr/lib/postgresql/15/bin
if [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "PostgreSQL 15 is missing: run 'sudo apt-get install -y postgresql-15' (the DAG tests need it)." >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null
# The Debian package starts a cluster on port 5432; the tests run their own on a free port.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
fi
