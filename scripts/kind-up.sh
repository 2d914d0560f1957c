#!/usr/bin/env bash
# `make kind-up`: a kind cluster that Flux deploys from this repository's remote branch.
#
#   1. create the kind cluster, or reuse it;
#   2. install Flux from clusters/kind/flux-system, as `flux bootstrap` does (not bootstrap itself: CI cannot push);
#   3. create the Secrets the cluster needs, with values generated here (never committed);
#   4. point Flux at GIT_URL/GIT_BRANCH, and through ConfigMap cluster-vars-local, git-sync as well;
#   5. wait for infra-controllers, infra-configs and apps, then print how to log in.
#
# Re-runnable: an existing cluster, Flux and Secrets are kept; the Git source follows the branch given now.
#
# Environment:
#   KIND_CLUSTER_NAME  kind cluster (default: airflow-gitops)
#   GIT_URL            repository Flux and git-sync clone (default: remote origin, as an https:// URL)
#   GIT_BRANCH         branch they follow (default: the current branch)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT

readonly CLUSTER_NAME="${KIND_CLUSTER_NAME:-airflow-gitops}"
# Every kubectl and flux call names this context, so a re-run never writes Secrets into another cluster
# that happens to be the current context.
readonly KUBE_CONTEXT="kind-${CLUSTER_NAME}"
readonly KIND_CONFIG="$SCRIPT_DIR/kind-config.yaml"
# Flux's controllers and CRDs are what Git holds (clusters/kind/flux-system/gotk-components.yaml, `flux install
# --export` of the pinned CLI): its header names the Flux version. The CLI itself only checks, creates the sync and
# waits: CI installs exactly this version (.github/workflows/kind-e2e.yaml); laptops need some 2.9.x.
readonly FLUX_COMPONENTS="$REPO_ROOT/clusters/kind/flux-system"
FLUX_VERSION_PINNED="$(sed -n 's/^# Flux Version: v//p' "$FLUX_COMPONENTS/gotk-components.yaml" | head -n 1)"
readonly FLUX_VERSION_PINNED
readonly FLUX_MINOR="${FLUX_VERSION_PINNED%.*}"
readonly AIRFLOW_NS="airflow"
readonly DB_HOST="airflow-db-rw.${AIRFLOW_NS}.svc.cluster.local"
readonly API_SERVER_ADDRESS="airflow-api-server.${AIRFLOW_NS}.svc.cluster.local:8080"
readonly KS="kustomization.kustomize.toolkit.fluxcd.io"
readonly GITREPO="gitrepository.source.toolkit.fluxcd.io"
# Marks what this script made, so `kubectl get secrets -l app.kubernetes.io/managed-by=kind-up` finds it.
readonly MANAGED_BY_LABEL="app.kubernetes.io/managed-by=kind-up"

REVISION=""

log() { printf '[kind-up] %s\n' "$*"; }
warn() { printf '[kind-up] WARNING: %s\n' "$*" >&2; }
die() {
  printf '[kind-up] ERROR: %s\n' "$*" >&2
  exit 1
}
k() { kubectl --context "$KUBE_CONTEXT" "$@"; }
fx() { flux --context "$KUBE_CONTEXT" "$@"; }

require_tools() {
  local tool missing=()
  for tool in docker kind kubectl flux git awk base64 od; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  if ((${#missing[@]})); then
    die "not found on PATH: ${missing[*]}. Prerequisites are in docs/kind.md" \
      "(docker, kind v0.31.0, kubectl 1.34-1.36, flux ${FLUX_VERSION_PINNED})."
  fi
  docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer: start Docker first."
}

check_flux_version() {
  local version
  [[ -n "$FLUX_VERSION_PINNED" ]] || die "clusters/kind/flux-system/gotk-components.yaml names no Flux version:" \
    "regenerate it with \`airflow-gitops flux-components --write\` (docs/flux.md)."
  version="$(flux --version 2>/dev/null | awk '{print $NF}' || true)"
  version="${version#v}"
  case "$version" in
    "$FLUX_MINOR".*) ;;
    *) die "flux CLI ${version:-of unknown version} found; this repository runs Flux ${FLUX_MINOR}" \
      "(${FLUX_VERSION_PINNED}, clusters/kind/flux-system/gotk-components.yaml): install a ${FLUX_MINOR} CLI." ;;
  esac
  if [[ "$version" != "$FLUX_VERSION_PINNED" ]]; then
    warn "flux CLI $version; the controllers installed are Git's, Flux $FLUX_VERSION_PINNED."
  fi
  log "flux CLI $version"
}

check_kubectl_version() {
  local minor
  minor="$(kubectl version --client -o json 2>/dev/null | awk -F'"' '/"minor"/ {print $4; exit}' || true)"
  minor="${minor//[!0-9]/}"
  [[ -n "$minor" ]] || die "could not read kubectl's version (kubectl version --client)."
  # `kubectl wait --for=create` below needs 1.31; the 1.35 API server supports clients one minor away.
  ((minor >= 31)) || die "kubectl 1.$minor is too old: use 1.34-1.36 for the Kubernetes 1.35 node."
  if ((minor < 34 || minor > 36)); then
    warn "kubectl 1.$minor is outside the supported skew of the 1.35 API server (1.34-1.36)."
  fi
}

# Flux and git-sync clone without credentials on kind; turn a GitHub SSH remote into its https:// URL.
https_url() {
  local url="$1"
  case "$url" in
    git@github.com:*) url="https://github.com/${url#git@github.com:}" ;;
    ssh://git@github.com/*) url="https://github.com/${url#ssh://git@github.com/}" ;;
  esac
  printf '%s\n' "$url"
}

resolve_git_source() {
  local url="${GIT_URL:-}"
  if [[ -z "$url" ]]; then
    url="$(git remote get-url origin 2>/dev/null)" || die "GIT_URL is not set and this checkout has no remote 'origin'."
  fi
  GIT_URL="$(https_url "$url")"
  [[ "$GIT_URL" == https://* ]] \
    || die "$url is not an https:// URL: Flux and git-sync on kind clone anonymously (set GIT_URL=https://...)."
  if [[ -z "${GIT_BRANCH:-}" ]]; then
    GIT_BRANCH="$(git symbolic-ref --short -q HEAD || true)"
    [[ -n "$GIT_BRANCH" ]] || die "HEAD is detached: set GIT_BRANCH to the branch Flux should follow."
  fi
  readonly GIT_URL GIT_BRANCH
  log "Flux and git-sync will follow $GIT_URL, branch $GIT_BRANCH"
}

# The cluster reads the remote branch, never this working tree: stop if it cannot, warn if it will
# run something other than HEAD.
check_branch_is_pushed() {
  local ref="refs/heads/$GIT_BRANCH" remote_sha local_sha ahead behind
  if ! remote_sha="$(GIT_TERMINAL_PROMPT=0 git ls-remote --heads "$GIT_URL" "$ref" \
    | awk -v ref="$ref" '$2 == ref {print $1}')"; then
    die "cannot read $GIT_URL without credentials; the cluster clones it anonymously, so it must be public."
  fi
  [[ -n "$remote_sha" ]] || die "branch $GIT_BRANCH is not on $GIT_URL: push it first (git push -u origin $GIT_BRANCH)."
  local_sha="$(git rev-parse -q --verify HEAD 2>/dev/null || true)"
  if [[ "$local_sha" == "$remote_sha" ]]; then
    log "HEAD ${local_sha:0:12} is what $GIT_BRANCH has on the remote"
  elif git cat-file -e "${remote_sha}^{commit}" 2>/dev/null && [[ -n "$local_sha" ]]; then
    ahead="$(git rev-list --count "${remote_sha}..HEAD")"
    behind="$(git rev-list --count "HEAD..${remote_sha}")"
    warn "HEAD is $ahead commit(s) ahead of and $behind behind $GIT_BRANCH on the remote:" \
      "the cluster runs ${remote_sha:0:12}, not your HEAD. Push (or pull) to test what you have."
  else
    warn "$GIT_BRANCH on the remote is at ${remote_sha:0:12}, which this checkout has not fetched:" \
      "the cluster runs that commit, not your HEAD."
  fi
  if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
    warn "uncommitted changes are not deployed: commit and push them for the cluster to see them."
  fi
}

create_cluster() {
  local clusters
  clusters="$(kind get clusters 2>/dev/null || true)"
  if grep -qx "$CLUSTER_NAME" <<<"$clusters"; then
    log "kind cluster $CLUSTER_NAME exists: reusing it"
    kind export kubeconfig --name "$CLUSTER_NAME" >/dev/null
  else
    log "creating kind cluster $CLUSTER_NAME from ${KIND_CONFIG#"$REPO_ROOT"/}"
    kind create cluster --name "$CLUSTER_NAME" --config "$KIND_CONFIG" --wait 3m
  fi
  k wait node --all --for=condition=Ready --timeout=3m >/dev/null
  # A cluster made from an older kind-config.yaml may lack the label; parallel_dag's transform would pend.
  if [[ -z "$(k get nodes -l node-pool=high-cpu -o name)" ]]; then
    warn "no node is labelled node-pool=high-cpu: parallel_dag's transform task will stay Pending." \
      "Recreate the cluster (make kind-down kind-up) or label a node."
  fi
}

# As `flux bootstrap` installs: server-side apply of the flux-system folder (its CRDs are too large for a client-side
# apply's annotation), then wait for the controllers. Idempotent: a re-run keeps or upgrades them to what Git holds.
install_flux() {
  log "checking Flux's prerequisites on the cluster"
  fx check --pre
  log "installing Flux $FLUX_VERSION_PINNED from ${FLUX_COMPONENTS#"$REPO_ROOT"/}"
  k apply --server-side --force-conflicts --field-manager=kind-up -k "$FLUX_COMPONENTS" >/dev/null
  k -n flux-system wait deployment --all --for=condition=Available --timeout=5m >/dev/null \
    || fail_with_diagnostics "Flux's controllers did not become Available"
  fx check
}

secret_exists() { k -n "$AIRFLOW_NS" get secret "$1" >/dev/null 2>&1; }
secret_key() { k -n "$AIRFLOW_NS" get secret "$1" -o "jsonpath={.data.$2}" | base64 --decode; }
random_hex() { od -An -v -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }
# Fernet wants 32 random bytes in URL-safe base64, padding included.
fernet_key() { head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '\n'; }

# A password that a kept Secret already holds, else a new one: the connection strings must carry the
# same password as the credentials Secret the database was initialised with.
password_for() {
  local secret="$1" bytes="$2" password
  if secret_exists "$secret"; then
    password="$(secret_key "$secret" password)"
    [[ -n "$password" ]] \
      || die "Secret $AIRFLOW_NS/$secret has no key 'password': delete it, or the cluster (make kind-down)."
  else
    password="$(random_hex "$bytes")"
  fi
  printf '%s\n' "$password"
}

# Creates Secret $1 from `kubectl create secret generic` arguments, unless it exists: regenerating a kept
# Secret would change passwords CloudNativePG has already set, and the Fernet key encrypting connections.
ensure_secret() {
  local name="$1"
  shift
  if secret_exists "$name"; then
    log "Secret $AIRFLOW_NS/$name exists: kept"
    return 0
  fi
  k -n "$AIRFLOW_NS" create secret generic "$name" "$@" --dry-run=client -o yaml \
    | k label --local -f - "$MANAGED_BY_LABEL" -o yaml \
    | k apply -f - >/dev/null
  log "Secret $AIRFLOW_NS/$name created"
}

# Made here and not in Git: a throwaway cluster needs no key management. infra-controllers also declares
# the namespace; creating it first lets the Secrets exist before CloudNativePG and the chart look for them.
create_secrets() {
  local db_password pipelines_password admin_password
  if ! k get namespace "$AIRFLOW_NS" >/dev/null 2>&1; then
    k create namespace "$AIRFLOW_NS" >/dev/null
  fi
  db_password="$(password_for airflow-db-credentials 24)"
  pipelines_password="$(password_for pipelines-db-credentials 24)"
  admin_password="$(password_for airflow-admin-user 16)"

  # CloudNativePG: the owner of database airflow (initdb) and the managed role pipelines.
  ensure_secret airflow-db-credentials --type=kubernetes.io/basic-auth \
    --from-literal=username=airflow --from-literal=password="$db_password"
  ensure_secret pipelines-db-credentials --type=kubernetes.io/basic-auth \
    --from-literal=username=pipelines --from-literal=password="$pipelines_password"
  # The chart: metadata database, Fernet key, API secret key, JWT secret, admin user.
  ensure_secret airflow-metadata-db \
    --from-literal=connection="postgresql://airflow:${db_password}@${DB_HOST}:5432/airflow"
  ensure_secret airflow-fernet-key --from-literal=fernet-key="$(fernet_key)"
  ensure_secret airflow-api-secret-key --from-literal=api-secret-key="$(random_hex 32)"
  ensure_secret airflow-jwt-secret --from-literal=jwt-secret="$(random_hex 32)"
  ensure_secret airflow-admin-user --from-literal=password="$admin_password"
  # The DAGs' connections: `postgres`, and `airflow_remote`, which on kind is this Airflow's own API
  # (as in `make dev`), so producer_remote_partner has a partner to send asset events to.
  ensure_secret airflow-conn-postgres \
    --from-literal=uri="postgresql://pipelines:${pipelines_password}@${DB_HOST}:5432/pipelines"
  ensure_secret airflow-conn-airflow-remote \
    --from-literal=uri="http://admin:${admin_password}@${API_SERVER_ADDRESS}"
}

# clusters/kind/*.yaml read cluster-vars-local after cluster-vars, so the branch under test wins for the
# Flux source and for git-sync (dags.gitSync.repo/branch/ref). Rewritten on every run: it is not a secret.
point_flux_at_branch() {
  # The watch label makes kustomize-controller re-run the Kustomizations that read it when it changes.
  k -n flux-system create configmap cluster-vars-local \
    --from-literal=git_url="$GIT_URL" --from-literal=git_branch="$GIT_BRANCH" --dry-run=client -o yaml \
    | k label --local -f - "$MANAGED_BY_LABEL" reconcile.fluxcd.io/watch=Enabled -o yaml \
    | k apply -f - >/dev/null
  log "ConfigMap flux-system/cluster-vars-local: git_url=$GIT_URL git_branch=$GIT_BRANCH"

  fx create source git flux-system --url="$GIT_URL" --branch="$GIT_BRANCH" --interval=1m \
    || fail_with_diagnostics "Flux could not fetch $GIT_BRANCH from $GIT_URL"
  fx create kustomization flux-system --source=GitRepository/flux-system --path=./clusters/kind \
    --prune=true --interval=10m \
    || fail_with_diagnostics "Flux could not apply ./clusters/kind"
}

wait_for_flux() {
  fx reconcile source git flux-system || fail_with_diagnostics "Flux could not fetch $GIT_BRANCH"
  REVISION="$(k -n flux-system get "$GITREPO/flux-system" -o jsonpath='{.status.artifact.revision}')"
  log "Flux has fetched $REVISION"
  wait_for_kustomization infra-controllers 10m
  wait_for_kustomization infra-configs 10m
  # Longer: the first Airflow install pulls its images and runs the database migrations.
  wait_for_kustomization apps 20m
}

# Ready alone is not enough on a re-run: the Kustomization may still be Ready from the previous commit.
# Waiting for lastAppliedRevision to be the fetched revision makes this wait for the commit under test.
wait_for_kustomization() {
  local name="$1" timeout="$2"
  log "waiting for Kustomization $name (up to $timeout)"
  if ! k -n flux-system wait "$KS/$name" --for=create --timeout=2m >/dev/null \
    || ! k -n flux-system wait "$KS/$name" --for="jsonpath={.status.lastAppliedRevision}=$REVISION" \
      --timeout="$timeout" >/dev/null \
    || ! k -n flux-system wait "$KS/$name" --for=condition=ready --timeout="$timeout" >/dev/null; then
    fail_with_diagnostics "Kustomization $name was not Ready at $REVISION within $timeout" \
      "(a push during the wait also moves the revision: then re-run)."
  fi
  log "Kustomization $name is Ready"
}

section() { printf '\n[kind-up] ===== %s =====\n' "$*"; }

dump_diagnostics() {
  section "flux get all -A"
  fx get all -A || true
  section "flux events -A"
  fx events -A || true
  section "kubectl get pods -A"
  k get pods -A -o wide || true
  section "helm-controller logs"
  k -n flux-system logs deploy/helm-controller --tail=200 || true
  section "kustomize-controller logs"
  k -n flux-system logs deploy/kustomize-controller --tail=100 || true
  section "events in namespace $AIRFLOW_NS"
  k -n "$AIRFLOW_NS" get events --sort-by=.lastTimestamp || true
}

fail_with_diagnostics() {
  printf '[kind-up] ERROR: %s\n' "$*" >&2
  dump_diagnostics
  die "$*"
}

print_access() {
  local password
  password="$(secret_key airflow-admin-user password)"
  log "Airflow is deployed on kind cluster $CLUSTER_NAME (kubectl context $KUBE_CONTEXT)"
  log "  from $GIT_URL, branch $GIT_BRANCH, at $REVISION"
  log "UI:       make port-forward, then http://localhost:8080  user: admin  password: $password"
  log "Deploy:   git push, then flux reconcile source git flux-system (Flux polls every minute anyway)"
  log "Check:    make kind-smoke"
}

main() {
  cd "$REPO_ROOT"
  require_tools
  check_flux_version
  check_kubectl_version
  resolve_git_source
  check_branch_is_pushed
  create_cluster
  install_flux
  create_secrets
  point_flux_at_branch
  wait_for_flux
  print_access
}

main "$@"
