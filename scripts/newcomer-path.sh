#!/usr/bin/env bash
# The README's two commands exactly as a newcomer runs them: `make validate`, then `make test`, in a fresh clone with
# nothing beside it (no ../shared), none of the tool's AIRFLOW_GITOPS_* variables, and no network for the tool. Both
# must pass: the repository validates and tests from what it holds, and says what it could not check.
#
#   bash scripts/newcomer-path.sh [SOURCE]    SOURCE: the repository to clone (default: this checkout)
#
# "No network for the tool": every HTTP(S) request goes to a proxy address where nothing listens, so it fails at
# once, as on an air-gapped machine; only the package registries that `make setup` installs from stay reachable
# (NO_PROXY). The tool's own fetches (Flux CRDs from GitHub, charts from their repositories) honour the proxy
# variables: Python's urllib and Go's net/http (the Helm SDK) both read them.
set -euo pipefail

SOURCE="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
readonly SOURCE
WORK="$(mktemp -d "${TMPDIR:-/tmp}/newcomer-path.XXXXXX")"
readonly WORK
trap 'rm -rf "$WORK"' EXIT

log() { printf '[newcomer-path] %s\n' "$*"; }

git clone --quiet "$SOURCE" "$WORK/airflow-gitops"
cd "$WORK/airflow-gitops"
log "fresh clone of $SOURCE at $(git rev-parse --short HEAD) in $PWD (nothing beside it)"

while IFS= read -r name; do
  unset "$name"
done < <(compgen -e | grep '^AIRFLOW_GITOPS_' || true)

# The package registries make setup uses: PyPI (or the index pip is configured with), Debian, npm; and this machine
# itself, where the tests run their own servers (PostgreSQL, the user API stand-in, Airflow's API server).
registries="localhost,127.0.0.1,::1,pypi.org,files.pythonhosted.org,deb.debian.org,security.debian.org"
registries+=",registry.npmjs.org"
# The Go module proxy too (the live tests build Kubernetes and Flux from modules when Go is installed).
goproxy=""
if command -v go >/dev/null; then
  goproxy="$(go env GOPROXY | tr ',|' '  ')"
  registries+=",sum.golang.org"
fi
# shellcheck disable=SC2086  # the lists split on whitespace on purpose
for url in "${PIP_INDEX_URL:-}" ${PIP_EXTRA_INDEX_URL:-} $goproxy; do
  [[ "$url" == *://* ]] || continue # GOPROXY's `direct` and `off`
  host="${url#*://}"
  host="${host%%/*}"
  host="${host##*@}"
  [[ -n "$host" ]] && registries+=",${host%%:*}"
done
blocked="http://127.0.0.1:9"
export HTTP_PROXY="$blocked" HTTPS_PROXY="$blocked" http_proxy="$blocked" https_proxy="$blocked"
export NO_PROXY="$registries" no_proxy="$registries"
log "network blocked for the tool (proxy $blocked); reachable: $registries"

log "make validate"
make validate
log "make test"
make test
log "both commands passed"
