"""Playing the kubelet, for real, for the pods whose outcome the tests are about: the chart's migrate Job.

kwok reports every other pod Running and every other Job pod Succeeded without running anything. For a migrate
Job pod that is not enough: whether a rollback works depends on what `airflow db migrate` or `airflow db downgrade`
does to a real schema. So for these pods (the ones kwok's pod-complete stage leaves alone,
`Cluster(real_pods=...)`), `MigrationKubelet` does what a kubelet would, with the container's own command line:

- the Airflow release is the image's tag, run from its own venv (`venvs[version]`: the project venv for the
  Airflow pinned in pyproject.toml, a cached venv for another release);
- the environment is the container's `env`, resolved as the kubelet resolves it: literal values, Secret and
  ConfigMap keys read from the cluster, `fieldRef`s of the pod's metadata (a missing annotation is the empty
  string), later entries winning; `airflow.cfg` and `airflow_local_settings.py` come from the mounted ConfigMap;
- one thing differs, and is the reason this exists at all: every variable that holds the metadata database's
  address (the CloudNativePG service, unreachable here) points at the real PostgreSQL the tests run instead;
- the exit code becomes the pod's phase (Succeeded or Failed, the container `terminated` with that code), as the
  Job controller reads it; the output goes to the cluster's log folder.

A failed container is reported as a failed pod, as with `restartPolicy: Never`: the Job controller then makes the
next pod up to its backoffLimit, rather than the kubelet restarting the container in place (`OnFailure`, what the
chart sets). The Job ends the same way; only the number of pods differs.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from airflow_gitops.live.cluster import Cluster

MIGRATE_COMPONENT = "run-airflow-migrations"
# The variables through which a chart pod reaches the metadata database (the chart's standard environment, and the
# direct connection that EKS's migrate Job uses to bypass the pooler).
DATABASE_VARIABLES = ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW_CONN_AIRFLOW_DB", "AIRFLOW_DIRECT_DB_CONN")


class MigrationKubelet(threading.Thread):
    """Runs every migrate Job pod of `namespace` for real, once, while started; `runs` records what it did."""

    def __init__(self, cluster: Cluster, database_url: str, venvs: dict[str, Path], namespace: str = "airflow",
                 timeout_s: float = 900) -> None:
        super().__init__(name="migration-kubelet", daemon=True)
        self.cluster, self.database_url, self.venvs = cluster, database_url, venvs
        self.namespace, self.timeout_s = namespace, timeout_s
        self.runs: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self.log_dir = cluster.layout.logs / "pods"
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                self._once()
            except Exception as error:  # the API server may be restarting; the next round tries again
                self.runs.append({"error": str(error)})
            self._stop.wait(1.0)

    def _once(self) -> None:
        pods = json.loads(self.cluster.kubectl("get", "pods", "-n", self.namespace, "-l",
                                               f"component={MIGRATE_COMPONENT}", "-o", "json").stdout)["items"]
        for pod in pods:
            uid = pod["metadata"]["uid"]
            if uid in self._seen or pod["metadata"].get("deletionTimestamp"):
                continue
            if (pod.get("status") or {}).get("phase") not in ("Pending", "Running") or not pod["spec"].get("nodeName"):
                continue
            self._seen.add(uid)
            self.runs.append(self.play(pod))

    def play(self, pod: dict[str, Any]) -> dict[str, Any]:
        container = pod["spec"]["containers"][0]
        name = pod["metadata"]["name"]
        image = container["image"]
        version = image.rsplit(":", 1)[-1]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        record: dict[str, Any] = {"pod": name, "image": image, "argv": argv, "started": time.time()}
        venv = self.venvs.get(version)
        log = self.log_dir / f"{self.namespace}_{name}.log"
        if venv is None:
            code, output = 127, f"no Airflow {version} here to run {image} (have: {', '.join(sorted(self.venvs))})"
        else:
            with tempfile.TemporaryDirectory(prefix="airflow-home-") as home:
                env = self.environment(pod, container, Path(home))
                env["PATH"] = f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
                try:
                    done = subprocess.run(argv, env=env, cwd=home, capture_output=True, text=True,
                                          timeout=self.timeout_s)
                    code, output = done.returncode, done.stdout + done.stderr
                except subprocess.TimeoutExpired as error:
                    partial = [part.decode(errors="replace") if isinstance(part, bytes) else (part or "")
                               for part in (error.stdout, error.stderr)]
                    code, output = 137, f"killed after {self.timeout_s:.0f} s\n{''.join(partial)}"
        log.write_text(output if isinstance(output, str) else str(output))
        record.update(exit_code=code, seconds=round(time.time() - record["started"], 1), log=str(log),
                      tail=output.strip().splitlines()[-5:] if isinstance(output, str) else [])
        self.report(pod, container, code, output)
        return record

    def environment(self, pod: dict[str, Any], container: dict[str, Any], home: Path) -> dict[str, str]:
        env: dict[str, str] = {"AIRFLOW_HOME": str(home), "HOME": str(home), "LANG": "C.UTF-8"}
        cache: dict[tuple[str, str], dict[str, str]] = {}
        for entry in container.get("env") or []:
            source = entry.get("valueFrom")
            if source is None:
                env[entry["name"]] = str(entry.get("value", ""))
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                env[entry["name"]] = self._data("secret", ref["name"], cache).get(ref["key"], "")
            elif "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                env[entry["name"]] = self._data("configmap", ref["name"], cache).get(ref["key"], "")
            elif "fieldRef" in source:
                env[entry["name"]] = field_value(pod, source["fieldRef"]["fieldPath"])
        for name in DATABASE_VARIABLES:
            if env.get(name):
                env[name] = self.database_url
        config = self._config_files(pod, container, cache)
        for target, text in config.items():
            path = home / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return env

    def _config_files(self, pod: dict[str, Any], container: dict[str, Any],
                      cache: dict[tuple[str, str], dict[str, str]]) -> dict[str, str]:
        """The files of ConfigMap volumes mounted under /opt/airflow (the image's AIRFLOW_HOME), by path below it."""
        volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
        files = {}
        for mount in container.get("volumeMounts") or []:
            volume = volumes.get(mount["name"]) or {}
            if "configMap" not in volume or not mount["mountPath"].startswith("/opt/airflow/"):
                continue
            data = self._data("configmap", volume["configMap"]["name"], cache)
            key = mount.get("subPath") or ""
            if key in data:
                files[mount["mountPath"].removeprefix("/opt/airflow/")] = data[key]
        return files

    def _data(self, kind: str, name: str, cache: dict[tuple[str, str], dict[str, str]]) -> dict[str, str]:
        if (kind, name) not in cache:
            found = self.cluster.kubectl("get", kind, name, "-n", self.namespace, "-o", "json", check=False)
            obj = json.loads(found.stdout) if found.returncode == 0 else {}
            data = dict(obj.get("data") or {})
            if kind == "secret":
                data = {key: base64.b64decode(value).decode() for key, value in data.items()}
            cache[(kind, name)] = data
        return cache[(kind, name)]

    def report(self, pod: dict[str, Any], container: dict[str, Any], code: int, output: str) -> None:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        phase = "Succeeded" if code == 0 else "Failed"
        status = {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "False", "lastTransitionTime": now,
                            "reason": "PodCompleted" if code == 0 else "PodFailed"}],
            "containerStatuses": [{
                "name": container["name"], "image": container["image"], "imageID": "", "ready": False,
                "restartCount": 0, "started": False,
                "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                                         "message": "\n".join(output.strip().splitlines()[-3:])[-1000:],
                                         "startedAt": now, "finishedAt": now}},
            }],
        }
        self.cluster.kubectl("patch", "pod", pod["metadata"]["name"], "-n", self.namespace, "--subresource=status",
                             "--type=merge", "-p", json.dumps({"status": status}))


def field_value(pod: dict[str, Any], path: str) -> str:
    """A downward-API fieldPath as the kubelet resolves it: a missing annotation or label is the empty string."""
    meta = pod.get("metadata") or {}
    for prefix, key in (("metadata.annotations", "annotations"), ("metadata.labels", "labels")):
        if path.startswith(prefix + "['") and path.endswith("']"):
            return str((meta.get(key) or {}).get(path[len(prefix) + 2:-2], ""))
    simple = {"metadata.name": meta.get("name"), "metadata.namespace": meta.get("namespace"),
              "metadata.uid": meta.get("uid"), "spec.nodeName": pod["spec"].get("nodeName"),
              "spec.serviceAccountName": pod["spec"].get("serviceAccountName"),
              "status.podIP": (pod.get("status") or {}).get("podIP"), "status.hostIP": (pod.get("status") or {}).get("hostIP")}
    return str(simple.get(path) or "")
