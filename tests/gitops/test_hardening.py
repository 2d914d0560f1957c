"""The hardening of issue 9 as rendered: tokens, NetworkPolicies, PSA labels, PDBs, the Pooler, Flux alerts.

Tests on chart objects take the `rendered_airflow` fixture and skip loudly without the chart.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from airflow_gitops.checks import policies
from airflow_gitops.model import pod_templates

from tests.helpers import airflow_release, render, skip_for

# The only pods that call the Kubernetes API: the scheduler launches worker pods, the cleanup CronJob deletes them.
TOKEN_USERS = {"airflow-scheduler", "airflow-cleanup"}


def git_objects(cluster: str, kind: str) -> dict[str, dict]:
    return {r.name: r.obj for r in render(cluster).resources if r.kind == kind}


def matches(selector: dict, labels: dict) -> bool:
    """A NetworkPolicy label selector (matchLabels and matchExpressions with In/NotIn/Exists)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        value, operator = labels.get(expression["key"]), expression["operator"]
        if (operator == "In" and value not in expression["values"]) or \
                (operator == "NotIn" and value in expression["values"]) or (operator == "Exists" and value is None):
            return False
    return True


def admitted(policy: dict, labels: dict, port: int) -> bool:
    return any(
        any(set(peer) == {"podSelector"} and matches(peer["podSelector"], labels) for peer in rule.get("from") or [])
        and any(p.get("port") == port for p in rule.get("ports") or [{"port": port}])
        for rule in policy["spec"].get("ingress") or []
    )


# --- service-account tokens ---------------------------------------------------------------------------

def test_only_the_scheduler_and_cleanup_service_accounts_mount_a_token(rendered_airflow):
    accounts = {r.name: r.obj.get("automountServiceAccountToken") for r in rendered_airflow.objects
                if r.kind == "ServiceAccount"}
    assert accounts, "the chart renders no ServiceAccount"
    mounting = {name for name, automount in accounts.items() if automount is not False}
    assert mounting == TOKEN_USERS


def test_no_pod_template_turns_the_token_back_on(rendered_airflow):
    resources = [*rendered_airflow.objects, *policies.pod_template_resources(rendered_airflow.objects)]
    for resource in resources:
        for _, spec in policies.pod_specs(resource):
            assert spec.get("automountServiceAccountToken") in (None, False), resource.ref


# --- NetworkPolicies ------------------------------------------------------------------------------------

def test_every_airflow_pod_is_admitted_by_the_database_policy(rendered_airflow, cluster):
    """Chart pods and the worker pod template all carry the labels airflow-db's policy admits on 5432."""
    database = git_objects(cluster, "NetworkPolicy")["airflow-db"]
    assert database["spec"]["podSelector"] == {"matchLabels": {"cnpg.io/cluster": "airflow-db"}}
    pods = [*rendered_airflow.objects, *policies.pod_template_resources(rendered_airflow.objects)]
    labelled = 0
    for resource in pods:
        for _, metadata, _ in pod_templates(resource):
            assert admitted(database, metadata.get("labels") or {}, 5432), resource.ref
            labelled += 1
    assert labelled >= 8


def test_nothing_else_reaches_the_database_but_its_instances_and_the_operator(cluster):
    database = git_objects(cluster, "NetworkPolicy")["airflow-db"]
    assert not admitted(database, {"app": "anything"}, 5432)
    peers = [peer for rule in database["spec"]["ingress"] for peer in rule["from"]]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "cnpg-system"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "cloudnative-pg"}}} in peers
    assert {"podSelector": {"matchLabels": {"cnpg.io/cluster": "airflow-db"}}} in peers


def test_the_api_server_admits_the_worker_pods(rendered_airflow):
    """With networkPolicies on and no `from`, chart 1.20 denies every client, worker pods included."""
    policy = next(r.obj for r in rendered_airflow.objects if r.kind == "NetworkPolicy" and r.name.endswith("api-server-policy"))
    assert admitted(policy, {"tier": "airflow", "component": "worker", "release": "airflow"}, 8080)


def test_worker_pods_accept_only_the_api_server(cluster):
    workers = git_objects(cluster, "NetworkPolicy")["airflow-worker-pods"]
    assert admitted(workers, {"tier": "airflow", "component": "api-server", "release": "airflow"}, 8793)
    assert not admitted(workers, {"tier": "airflow", "component": "worker", "release": "airflow"}, 8793)


def test_on_eks_only_the_pooler_and_airflow_reach_the_pooler_and_the_pooler_the_database():
    policies_ = git_objects("eks", "NetworkPolicy")
    pooler_labels = {"cnpg.io/poolerName": "airflow-db-pooler-rw"}
    assert admitted(policies_["airflow-db-from-pooler"], pooler_labels, 5432)
    assert admitted(policies_["airflow-db-pooler-rw"], {"tier": "airflow", "release": "airflow"}, 5432)
    assert not admitted(policies_["airflow-db-pooler-rw"], {"app": "other"}, 5432)


def test_eks_auto_mode_enforces_network_policies_before_the_workloads_they_guard():
    # AWS "Use Network Policies with EKS Auto Mode", step 1: without it every NetworkPolicy here is ignored on EKS.
    state = render("eks")
    config = next(r for r in state.resources if r.kind == "ConfigMap" and r.name == "amazon-vpc-cni")
    assert config.namespace == "kube-system"
    assert config.obj["data"] == {"enable-network-policy-controller": "true"}
    assert config.applied_by == "Kustomization flux-system/infra-controllers"
    policies_ = [r for r in state.resources if r.kind == "NetworkPolicy"]
    assert policies_ and all(r.applied_by != "Kustomization flux-system/infra-controllers" for r in policies_)


def test_the_webhook_receiver_stays_reachable_from_its_load_balancer():
    """The NLB's packets come from addresses outside any pod, which Flux's allow-webhooks (pods only) does not admit."""
    notification_controller = {"app": "notification-controller"}
    external = [
        policy for policy in git_objects("eks", "NetworkPolicy").values()
        if policy["metadata"]["namespace"] == "flux-system"
        and matches(policy["spec"]["podSelector"], notification_controller)
        and any(any(peer.get("ipBlock", {}).get("cidr") == "0.0.0.0/0" and not peer["ipBlock"].get("except")
                    for peer in rule.get("from") or [])
                and [p.get("port") for p in rule.get("ports") or []] == [9292]
                for rule in policy["spec"].get("ingress") or [])]
    assert len(external) == 1
    # Only the Receiver's port: the controller's event and metrics ports stay as Flux's own policies leave them.
    assert external[0]["spec"]["policyTypes"] == ["Ingress"]
    receivers = git_objects("eks", "Receiver")
    assert receivers["github-push"]["metadata"]["namespace"] == "flux-system"


# --- Pod Security Admission labels --------------------------------------------------------------------------

def test_every_namespace_enforces_at_least_baseline_pinned_to_the_cluster_version(cluster):
    version = f"v{render(cluster).variables['kubernetes_version']}"
    namespaces = git_objects(cluster, "Namespace")
    assert "airflow" in namespaces
    for name, namespace in namespaces.items():
        labels = namespace["metadata"].get("labels") or {}
        assert labels.get("pod-security.kubernetes.io/enforce") in ("baseline", "restricted"), name
        for mode in ("enforce", "warn", "audit"):
            assert labels.get(f"pod-security.kubernetes.io/{mode}-version") == version, (name, mode)
            assert labels.get(f"pod-security.kubernetes.io/{mode}") in ("baseline", "restricted"), (name, mode)
    assert namespaces["airflow"]["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


# --- PodDisruptionBudgets and replicas ----------------------------------------------------------------------

def test_api_server_and_scheduler_have_a_pod_disruption_budget(rendered_airflow):
    budgets = {r.obj["spec"]["selector"]["matchLabels"]["component"] for r in rendered_airflow.objects
               if r.kind == "PodDisruptionBudget"}
    assert {"api-server", "scheduler"} <= budgets


def test_eks_runs_two_api_servers():
    assert airflow_release("eks").values["apiServer"]["replicas"] == 2


# --- connection pooling on EKS --------------------------------------------------------------------------

def pooler_numbers() -> tuple[int, int, int]:
    pooler = git_objects("eks", "Pooler")["airflow-db-pooler-rw"]["spec"]
    parameters = pooler["pgbouncer"]["parameters"]
    servers = pooler["instances"] * (int(parameters["default_pool_size"]) + int(parameters["reserve_pool_size"]))
    max_connections = int(git_objects("eks", "Cluster")["airflow-db"]["spec"]["postgresql"]["parameters"]["max_connections"])
    return servers, max_connections, int(parameters["max_client_conn"])


def test_the_pooler_uses_transaction_mode_in_front_of_the_metadata_database():
    pooler = git_objects("eks", "Pooler")["airflow-db-pooler-rw"]["spec"]
    assert pooler["cluster"]["name"] == "airflow-db"
    assert pooler["type"] == "rw"
    assert pooler["pgbouncer"]["poolMode"] == "transaction"


def test_max_connections_covers_the_pooler_the_task_pods_and_reserved_slots():
    """The arithmetic of infrastructure/configs/eks/airflow-db-ha.yaml, checked against the manifests."""
    servers, max_connections, max_client_conn = pooler_numbers()
    parallelism, direct_migrate, instance_manager, superuser_reserved = 32, 2, 3, 3
    needed = servers + parallelism + direct_migrate + instance_manager + superuser_reserved
    assert needed + servers <= max_connections, "a rolling restart of the pooler must fit too"
    api, scheduler, dag_processor, triggerer, jobs, pool = 2, 2, 1, 1, 1, 15
    assert (api + scheduler + dag_processor + triggerer + jobs + parallelism) * pool <= max_client_conn


def test_airflow_connects_through_the_pooler_and_migrations_straight_to_the_primary():
    secret = git_objects("eks", "ExternalSecret")["airflow-metadata-db"]["spec"]["target"]["template"]["data"]
    assert urlsplit(secret["connection"].replace("{{ .db_password | urlquery }}", "x")).hostname == \
        "airflow-db-pooler-rw.airflow.svc.cluster.local"
    assert urlsplit(secret["direct"].replace("{{ .db_password | urlquery }}", "x")).hostname == \
        "airflow-db-rw.airflow.svc.cluster.local"


def test_the_migrate_job_reads_the_direct_connection_on_eks():
    release = airflow_release("eks")
    if release.unrendered_reason:
        skip_for("chart", f"chart checks not run: {release.unrendered_reason}")
    job = next(r.obj for r in release.objects if r.kind == "Job" and r.name.endswith("run-airflow-migrations"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert env["AIRFLOW_DIRECT_DB_CONN"]["valueFrom"]["secretKeyRef"] == {"name": "airflow-metadata-db", "key": "direct"}
    # The script (charts-values/airflow/common.yaml) points Airflow at it before it migrates or downgrades.
    script = container["args"][-1]
    assert 'export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$AIRFLOW_DIRECT_DB_CONN"' in script
    assert script.index("AIRFLOW_DIRECT_DB_CONN") < script.index("airflow db migrate") < script.index("db downgrade")


# --- Flux alerts on EKS ---------------------------------------------------------------------------------------

def test_slack_alert_covers_kustomizations_and_every_helmrelease_namespace():
    alert = git_objects("eks", "Alert")["slack-reconcile-errors"]["spec"]
    assert alert["eventSeverity"] == "error"
    sources = alert["eventSources"]
    assert {"kind": "Kustomization", "name": "*"} in sources
    release_namespaces = {r.namespace for r in render("eks").resources if r.kind == "HelmRelease"}
    covered = {s.get("namespace") for s in sources if s["kind"] == "HelmRelease" and s["name"] == "*"}
    assert release_namespaces <= covered


SOURCE_KINDS = ("GitRepository", "HelmRepository", "OCIRepository", "Bucket")


def test_slack_alert_covers_every_source_a_reconcile_reads():
    # A failing fetch leaves everything Ready on the old revision: only the source's own event says so.
    alert = git_objects("eks", "Alert")["slack-reconcile-errors"]
    namespace = alert["metadata"]["namespace"]
    covered = {(s["kind"], s.get("namespace") or namespace) for s in alert["spec"]["eventSources"] if s["name"] == "*"}
    state = render("eks")
    sources = {(r.kind, r.namespace) for r in state.resources if r.kind in SOURCE_KINDS}
    # The bootstrap's GitRepository (gotk-sync.yaml is written by `flux bootstrap`): what every Kustomization reads.
    sources |= {(r.obj["spec"]["sourceRef"]["kind"], r.obj["spec"]["sourceRef"].get("namespace") or r.namespace)
                for r in state.resources if r.kind == "Kustomization"}
    # helm-controller makes a HelmChart for each HelmRelease, in the namespace of the release's chart source.
    sources |= {("HelmChart", r.obj["spec"]["chart"]["spec"]["sourceRef"].get("namespace") or r.namespace)
                for r in state.resources if r.kind == "HelmRelease"}
    assert {("GitRepository", "flux-system"), ("HelmChart", "flux-system")} <= sources
    assert sources <= covered, sorted(sources - covered)


def test_github_commit_status_points_at_this_repository():
    state = render("eks")
    provider = git_objects("eks", "Provider")["github-commit-status"]["spec"]
    assert provider["type"] == "github"
    assert provider["address"] == state.variables["git_url"]
    alert = git_objects("eks", "Alert")["github-commit-status"]["spec"]
    assert alert["eventSeverity"] == "info"
    assert alert["providerRef"]["name"] == "github-commit-status"


def test_alert_secrets_come_from_external_secrets():
    external = {(o["metadata"]["namespace"], o["spec"]["target"]["name"]): o
                for o in git_objects("eks", "ExternalSecret").values()}
    for provider in git_objects("eks", "Provider").values():
        key = (provider["metadata"]["namespace"], provider["spec"]["secretRef"]["name"])
        assert key in external, key
    # The keys notification-controller reads: `address` for Slack's webhook URL, `token` for GitHub.
    assert set(external[("flux-system", "flux-slack-webhook")]["spec"]["target"]["template"]["data"]) == {"address"}
    assert set(external[("flux-system", "flux-github-token")]["spec"]["target"]["template"]["data"]) == {"token"}


def test_kind_has_no_alerts():
    assert not git_objects("kind", "Alert") and not git_objects("kind", "Provider")
