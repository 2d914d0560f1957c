#!/usr/bin/env bash
# `make kind-smoke`: on the cluster `make kind-up` made, proves what a user of the platform relies on:
#   - the HelmRelease is Ready and the scheduler, dag-processor and API server are rolled out;
#   - nothing of Celery runs: no redis, flower or worker Deployment or StatefulSet;
#   - git-sync delivered dags/ and the dag-processor parsed parallel_dag;
#   - a triggered run of parallel_dag succeeds through the KubernetesExecutor, one pod per task, and the
#     transform task's pod carries its pod_override (nodeSelector node-pool=high-cpu);
#   - the API server answers through `kubectl port-forward`, the way `make port-forward` reaches the UI.
#
# Environment:
#   KIND_CLUSTER_NAME    kind cluster (default: airflow-gitops)
#   SMOKE_PORT           local port of the port-forward (default: 8080)
#   SMOKE_PARSE_TIMEOUT  seconds to wait for parallel_dag to be parsed (default: 180)
#   SMOKE_RUN_TIMEOUT    seconds to wait for the run to succeed (default: 600)
set -euo pipefail

readonly CLUSTER_NAME="${KIND_CLUSTER_NAME:-airflow-gitops}"
# Named on every call, as in kind-up.sh: the smoke test must never run against another cluster.
readonly KUBE_CONTEXT="kind-${CLUSTER_NAME}"
readonly NS="airflow"
readonly DAG_ID="parallel_dag"
readonly HIGH_CPU_TASK="transform"
readonly PORT="${SMOKE_PORT:-8080}"
readonly PARSE_TIMEOUT="${SMOKE_PARSE_TIMEOUT:-180}"
readonly RUN_TIMEOUT="${SMOKE_RUN_TIMEOUT:-600}"
readonly HR="helmrelease.helm.toolkit.fluxcd.io"

WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/kind-smoke.XXXXXX")"
readonly WORK_DIR
readonly PODS_SEEN="$WORK_DIR/pods-seen"
POD_WATCH_PID=""
PORT_FORWARD_PID=""
RUN_ID=""

log() { printf '[kind-smoke] %s\n' "$*"; }
die() {
  printf '[kind-smoke] ERROR: %s\n' "$*" >&2
  exit 1
}
k() { kubectl --context "$KUBE_CONTEXT" "$@"; }

# Background kubectl processes are started directly (not through k), so that $! is kubectl itself and
# killing it leaves nothing behind.
stop_process() {
  local pid="$1"
  [[ -n "$pid" ]] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  stop_process "$POD_WATCH_PID"
  stop_process "$PORT_FORWARD_PID"
  rm -rf "$WORK_DIR"
}
trap cleanup EXIT

section() { printf '\n[kind-smoke] ===== %s =====\n' "$*"; }

dump_diagnostics() {
  section "HelmReleases"
  k get "$HR" -A || true
  section "pods in $NS"
  k -n "$NS" get pods -o wide || true
  section "worker pods of $DAG_ID seen during the run"
  cat "$PODS_SEEN" 2>/dev/null || true
  section "events in $NS"
  k -n "$NS" get events --sort-by=.lastTimestamp || true
  section "scheduler logs"
  k -n "$NS" logs deploy/airflow-scheduler -c scheduler --tail=200 || true
  section "dag-processor logs"
  k -n "$NS" logs deploy/airflow-dag-processor --all-containers --tail=100 || true
}

fail() {
  printf '[kind-smoke] FAILED: %s\n' "$*" >&2
  dump_diagnostics
  die "$*"
}

require_tools() {
  local tool missing=()
  for tool in kubectl jq curl; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ((${#missing[@]} == 0)) || die "not found on PATH: ${missing[*]} (see docs/kind.md)."
  k get namespace "$NS" >/dev/null 2>&1 \
    || die "namespace $NS not found in context $KUBE_CONTEXT: run make kind-up first."
  # Checked before the run, not after it: another server on the port would answer in the API server's place.
  if curl -s -o /dev/null --max-time 2 "http://localhost:$PORT"; then
    die "something already answers on localhost:$PORT (make dev?): stop it or set SMOKE_PORT."
  fi
}

check_release_ready() {
  log "HelmRelease $NS/airflow is Ready?"
  k -n "$NS" wait "$HR/airflow" --for=condition=ready --timeout=5m >/dev/null \
    || fail "HelmRelease $NS/airflow is not Ready"
}

check_rollouts() {
  local deployment
  for deployment in airflow-scheduler airflow-dag-processor airflow-api-server; do
    k -n "$NS" rollout status "deploy/$deployment" --timeout=5m || fail "$deployment did not roll out"
  done
}

# KubernetesExecutor only: a Celery leftover here would mean the values contract broke.
check_no_celery() {
  local workloads celery
  workloads="$(k -n "$NS" get deployments,statefulsets -o name)"
  celery="$(grep -E 'redis|flower|worker' <<<"$workloads" || true)"
  [[ -z "$celery" ]] || fail "Celery workloads found in $NS: $celery"
  log "no redis, flower or worker Deployment/StatefulSet in $NS"
}

airflow_cli() { k -n "$NS" exec deploy/airflow-scheduler -c scheduler -- airflow "$@"; }

# The CLI prints its JSON on one line, but warnings and log lines share stdout: keep the line that is a
# JSON array ("[{" or "[]"); log lines start with a timestamp or "[20..".
airflow_json() {
  local out
  if ! out="$(airflow_cli "$@" 2>"$WORK_DIR/airflow-cli.err")"; then
    printf '[kind-smoke] airflow %s failed:\n' "$*" >&2
    cat "$WORK_DIR/airflow-cli.err" >&2
    return 1
  fi
  out="$(grep -E '^\[(\{|\])' <<<"$out" | tail -n 1 || true)"
  if ! jq -e 'type == "array"' >/dev/null 2>&1 <<<"$out"; then
    printf '[kind-smoke] airflow %s printed no JSON array\n' "$*" >&2
    return 1
  fi
  printf '%s\n' "$out"
}

# git-sync pulls every 10 s and the dag-processor lists new files every 30 s (refresh_interval).
wait_for_dag_parsed() {
  local deadline=$((SECONDS + PARSE_TIMEOUT)) dags
  log "waiting up to ${PARSE_TIMEOUT}s for the dag-processor to parse $DAG_ID"
  while true; do
    if dags="$(airflow_json dags list -o json)" \
      && jq -e --arg dag "$DAG_ID" 'any(.[]; .dag_id == $dag)' >/dev/null <<<"$dags"; then
      log "$DAG_ID is parsed ($(jq length <<<"$dags") DAGs in the metadata database)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      section "import errors"
      airflow_cli dags list-import-errors || true
      fail "$DAG_ID was not parsed within ${PARSE_TIMEOUT}s"
    fi
    sleep 10
  done
}

# A watch sees every task pod, however short-lived: the executor deletes a pod as soon as its task succeeds.
start_pod_watch() {
  : >"$PODS_SEEN"
  kubectl --context "$KUBE_CONTEXT" -n "$NS" get pods -l "dag_id=$DAG_ID" --watch \
    -o jsonpath='{.metadata.name}{" "}{.metadata.labels.task_id}{" "}{.spec.nodeSelector.node-pool}{"\n"}' \
    >>"$PODS_SEEN" 2>"$WORK_DIR/pod-watch.err" &
  POD_WATCH_PID=$!
}

trigger_run() {
  local run
  airflow_cli dags unpause "$DAG_ID" >/dev/null 2>&1 || fail "could not unpause $DAG_ID"
  run="$(airflow_json dags trigger "$DAG_ID" -o json)" || fail "could not trigger $DAG_ID"
  RUN_ID="$(jq -r '.[0].dag_run_id // empty' <<<"$run")"
  [[ -n "$RUN_ID" ]] || fail "airflow dags trigger printed no run id: $run"
  log "triggered $DAG_ID: run $RUN_ID"
}

show_task_states() {
  section "task states of $RUN_ID"
  airflow_cli tasks states-for-dag-run "$DAG_ID" "$RUN_ID" || true
}

wait_for_run() {
  local deadline=$((SECONDS + RUN_TIMEOUT)) runs state="" last="-" pods
  log "waiting up to ${RUN_TIMEOUT}s for run $RUN_ID"
  while true; do
    if runs="$(airflow_json dags list-runs "$DAG_ID" -o json)"; then
      state="$(jq -r --arg id "$RUN_ID" '.[] | select(.run_id == $id) | .state' <<<"$runs")"
    fi
    pods="$(awk '{print $1}' "$PODS_SEEN" | sort -u | wc -l | tr -d ' ')"
    if [[ "$state" != "$last" ]]; then
      log "run $RUN_ID: ${state:-not listed yet} ($pods worker pod(s) seen so far)"
      last="$state"
    fi
    case "$state" in
      success) return 0 ;;
      failed)
        show_task_states
        fail "run $RUN_ID of $DAG_ID failed"
        ;;
    esac
    if ((SECONDS >= deadline)); then
      show_task_states
      fail "run $RUN_ID did not succeed within ${RUN_TIMEOUT}s (last state: ${state:-unknown})"
    fi
    sleep 10
  done
}

# Each task ran in its own pod, and transform's pod got the pod_override that replaces the Celery queue.
check_worker_pods() {
  local tasks selector
  stop_process "$POD_WATCH_PID"
  POD_WATCH_PID=""
  tasks="$(awk 'NF >= 2 {print $2}' "$PODS_SEEN" | sort -u | tr '\n' ' ')"
  [[ -n "$tasks" ]] \
    || fail "no worker pod with label dag_id=$DAG_ID was seen: did the KubernetesExecutor run the tasks?"
  log "worker pods were started for tasks: $tasks"
  selector="$(awk -v task="$HIGH_CPU_TASK" '$2 == task && NF >= 3 {print $3; exit}' "$PODS_SEEN")"
  [[ "$selector" == "high-cpu" ]] \
    || fail "the $HIGH_CPU_TASK pod did not carry nodeSelector node-pool=high-cpu (pod_override not applied)"
  log "the $HIGH_CPU_TASK pod ran with nodeSelector node-pool=high-cpu (its pod_override)"
  k -n "$NS" get pods -l "dag_id=$DAG_ID" -o wide 2>/dev/null || true
}

# The same port-forward as `make port-forward`, then the public health endpoint of the API server.
check_ui_health() {
  local url="http://localhost:$PORT" health
  kubectl --context "$KUBE_CONTEXT" -n "$NS" port-forward svc/airflow-api-server "$PORT:8080" \
    >"$WORK_DIR/port-forward.log" 2>&1 &
  PORT_FORWARD_PID=$!
  local tries=0
  until grep -q 'Forwarding from' "$WORK_DIR/port-forward.log"; do
    if ! kill -0 "$PORT_FORWARD_PID" 2>/dev/null || ((++tries > 30)); then
      cat "$WORK_DIR/port-forward.log" >&2
      fail "kubectl port-forward svc/airflow-api-server $PORT:8080 did not start"
    fi
    sleep 1
  done
  health="$(curl -fsS --retry 5 --retry-delay 2 --retry-all-errors --max-time 10 "$url/api/v2/monitor/health")" \
    || fail "GET $url/api/v2/monitor/health failed"
  log "GET /api/v2/monitor/health: $health"
  jq -e '.metadatabase.status == "healthy" and .scheduler.status == "healthy"
         and ([.[] | objects | .status | select(. != null)] | all(. == "healthy"))' >/dev/null <<<"$health" \
    || fail "the API server reports an unhealthy component: $health"
  stop_process "$PORT_FORWARD_PID"
  PORT_FORWARD_PID=""
  log "the UI is reachable through kubectl port-forward (make port-forward) at $url"
}

main() {
  require_tools
  check_release_ready
  check_rollouts
  check_no_celery
  wait_for_dag_parsed
  start_pod_watch
  trigger_run
  wait_for_run
  check_worker_pods
  check_ui_health
  log "OK: $DAG_ID ran through the KubernetesExecutor on kind cluster $CLUSTER_NAME"
}

main "$@"
