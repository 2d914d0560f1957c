"""Worst-case push-to-live latencies implied by the manifests and the chart values."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_gitops.kustomize_controller.api import Kustomization
from airflow_gitops.model import ClusterState
from airflow_gitops.model import duration_seconds as seconds
from airflow_gitops.source.api import GitRepository

# What `flux bootstrap` writes into gotk-sync.yaml and what scripts/kind-up.sh creates.
BOOTSTRAP_GIT_INTERVAL = "1m"
# Airflow 3.3 defaults when the values do not set them.
AIRFLOW_DEFAULTS = {"refresh_interval": 300, "min_file_process_interval": 30}
TARGETS = {"new DAG": 60, "changed DAG": 60, "config change": 120}




@dataclass
class Latency:
    path: str
    seconds: float
    breakdown: str
    target: float | None

    @property
    def verdict(self) -> str:
        if self.target is None:
            return ""
        return "ok" if self.seconds <= self.target else "OVER TARGET"


def push_to_live(state: ClusterState, airflow_release: str = "airflow") -> list[Latency]:
    git = state.find("GitRepository", "flux-system", "flux-system")
    git_interval = seconds(GitRepository.parse(git).interval if git else BOOTSTRAP_GIT_INTERVAL)
    git_label = "GitRepository interval" + ("" if git else f" (bootstrap default {BOOTSTRAP_GIT_INTERVAL})")
    has_receiver = any(r.kind == "Receiver" for r in state.resources)
    apps = next((r for r in state.resources if r.kind == "Kustomization"
                 and any(o.kind == "HelmRelease" and o.name == airflow_release and o.applied_by.endswith("/" + r.name)
                         for o in state.resources)), None)
    ks_interval = seconds(Kustomization.parse(apps).interval) if apps else 0.0
    release = next((r for r in state.releases if r.helmrelease.name == airflow_release), None)
    values = release.values if release else {}
    git_sync = seconds(((values.get("dags") or {}).get("gitSync") or {}).get("period") or "10s")
    processor = (values.get("config") or {}).get("dag_processor") or {}
    refresh = seconds(processor.get("refresh_interval", AIRFLOW_DEFAULTS["refresh_interval"]))
    reparse = seconds(processor.get("min_file_process_interval", AIRFLOW_DEFAULTS["min_file_process_interval"]))

    results = [
        Latency("config change (poll)", git_interval,
                f"{git_label} {git_interval:.0f}s; Kustomization and HelmRelease react to the new revision "
                "and spec at once (watches), then Helm upgrades", TARGETS["config change"]),
        Latency("config change (missed event)", git_interval + ks_interval,
                f"+ Kustomization interval {ks_interval:.0f}s: the periodic reconcile bounds a lost watch event",
                None),
        Latency("new DAG", git_sync + refresh,
                f"git-sync period {git_sync:.0f}s + [dag_processor] refresh_interval {refresh:.0f}s", TARGETS["new DAG"]),
        Latency("changed DAG", git_sync + reparse,
                f"git-sync period {git_sync:.0f}s + [dag_processor] min_file_process_interval {reparse:.0f}s",
                TARGETS["changed DAG"]),
    ]
    if has_receiver:
        results.insert(1, Latency("config change (webhook)", 0.0,
                                  "GitHub push webhook -> Receiver reconciles the GitRepository at once", None))
    return results
