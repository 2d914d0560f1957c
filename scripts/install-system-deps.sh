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
# In CI (CI=true) the exact version: what is tested does not move under it. Debian drops a version from its archive
# once a newer one replaces it; then `apt-get install` fails with "Version ... was not found": bump it here to what
# `apt-cache policy postgresql-15` offers (bookworm-security). apt itself checks every package against the archive's
# signed hashes.
POSTGRESQL_15_VERSION=15.20-0+deb12u1
package=postgresql-15
if [ "${CI:-}" = true ]; then package="postgresql-15=$POSTGRESQL_15_VERSION"; fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "$package" >/dev/null
# The Debian package starts a cluster on port 5432; the tests run their own on a free port.
if command -v pg_ctlcluster >/dev/null 2>&1; then
  pg_ctlcluster 15 main stop >/dev/null 2>&1 || true
fi
