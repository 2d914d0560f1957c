#!/usr/bin/env bash
# Proves that `airflow-gitops render` builds what Flux builds: for every Flux Kustomization of every cluster (or
# of the clusters given as arguments), compares the tool's objects with the real Flux CLI's
#   flux build kustomization NAME --path PATH --kustomization-file FILE --dry-run
# Both sides are printed canonically by `airflow-gitops flux-build`; see scripts/airflow_gitops/operate/flux_build.py for
# the two things dry-run mode does differently (substituteFrom, owner labels and SOPS masks) and how they are met.
#
# Exit status: 0 every build is identical; 1 some build differs (unified diffs printed); 2 a build failed.
#
# Environment:
#   FLUX            the Flux CLI (default: flux on PATH; CI installs 2.9.5, the version kind-e2e runs)
#   AIRFLOW_GITOPS  the tool (default: .venv/bin/airflow-gitops of this checkout)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly REPO_ROOT
readonly FLUX="${FLUX:-flux}"
readonly GITOPS="${AIRFLOW_GITOPS:-$REPO_ROOT/.venv/bin/airflow-gitops}"

WORK="$(mktemp -d)"
readonly WORK
trap 'rm -rf "$WORK"' EXIT

log() { printf '[flux-build-compare] %s\n' "$*"; }

cd "$REPO_ROOT"
command -v "$FLUX" >/dev/null 2>&1 || {
  log "ERROR: the Flux CLI ($FLUX) is not on PATH"
  exit 2
}
log "$("$FLUX" --version 2>&1 | head -n 1)"

clusters=("$@")
if ((${#clusters[@]} == 0)); then
  for dir in clusters/*/; do clusters+=("$(basename "$dir")"); done
fi

failed=0
differ=0
compared=0
for cluster in "${clusters[@]}"; do
  if ! list="$("$GITOPS" flux-build "$cluster" --list)"; then
    log "ERROR: $cluster: airflow-gitops could not list its Kustomizations"
    failed=1
    continue
  fi
  while IFS=$'\t' read -r ref path; do
    [[ -n "$ref" ]] || continue
    namespace="${ref%%/*}"
    name="${ref#*/}"
    out="$WORK/$cluster/$namespace--$name"
    mkdir -p "$out"
    if ! "$GITOPS" flux-build "$cluster" "$ref" --kustomization-file-out "$out/kustomization.yaml" \
      >"$out/tool.yaml"; then
      log "ERROR: $cluster $ref: airflow-gitops could not build it"
      failed=1
      continue
    fi
    # --in-memory-build: Flux's generated kustomization.yaml stays out of the checkout.
    if ! "$FLUX" build kustomization "$name" --namespace "$namespace" --path "$path" \
      --kustomization-file "$out/kustomization.yaml" --dry-run --strict-substitute --in-memory-build \
      >"$out/flux-raw.yaml" 2>"$out/flux.err"; then
      log "ERROR: $cluster $ref: flux build failed:"
      cat "$out/flux.err" >&2
      failed=1
      continue
    fi
    if ! "$GITOPS" flux-build "$cluster" "$ref" --normalize "$out/flux-raw.yaml" >"$out/flux.yaml"; then
      failed=1
      continue
    fi
    compared=$((compared + 1))
    if diff -u --label "airflow-gitops: $cluster $ref" --label "flux build: $cluster $ref" \
      "$out/tool.yaml" "$out/flux.yaml"; then
      log "same: $cluster $ref ($path, $(grep -c '^# ' "$out/tool.yaml" || true) objects)"
    else
      log "DIFFERENT: $cluster $ref ($path)"
      differ=1
    fi
  done <<<"$list"
done

log "$compared Kustomization(s) compared; differences: $differ; errors: $failed"
if ((failed)); then exit 2; fi
if ((differ)); then exit 1; fi
exit 0
