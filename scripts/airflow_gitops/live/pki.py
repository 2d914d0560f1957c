"""The local cluster's certificates and keys, made with the openssl CLI (no Python dependency).

One CA signs: the API server's serving certificate, one client certificate per identity (admin, the controller
manager, the scheduler, kwok), and kwok's serving certificate. Each identity is what a kubeadm cluster gives it:
`system:kube-controller-manager` and `system:kube-scheduler` get their permissions from the API server's own
bootstrap RBAC, so RBAC is real for them. The service-account key pair signs the tokens that the Flux controllers
run with.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

SERVICE_IP = "10.96.0.1"
"""The first address of --service-cluster-ip-range: the `kubernetes` Service's ClusterIP."""

_API_SANS = ("DNS:localhost", "DNS:kubernetes", "DNS:kubernetes.default", "DNS:kubernetes.default.svc",
             "DNS:kubernetes.default.svc.cluster.local", "IP:127.0.0.1", f"IP:{SERVICE_IP}")


@dataclass(frozen=True)
class Identity:
    name: str
    common_name: str
    organization: str | None = None


CLIENTS = (
    Identity("admin", "live-admin", "system:masters"),
    Identity("controller-manager", "system:kube-controller-manager"),
    Identity("scheduler", "system:kube-scheduler"),
    # kwok plays the kubelet of every node at once; the Node authorizer grants a kubelet only its own node, so
    # kwok needs more than one kubelet's rights. It updates status only; what it may do is not under test.
    Identity("kwok", "kwok-controller", "system:masters"),
    # The API server's client for aggregated APIs, as kubeadm's front-proxy-client (here from the one CA).
    Identity("front-proxy-client", "front-proxy-client"),
)


def _openssl(*args: str, cwd: Path) -> None:
    result = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _key(path: Path) -> None:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path), cwd=path.parent)


def _sign(directory: Path, name: str, subject: str, extensions: str, days: int = 30) -> None:
    _key(directory / f"{name}.key")
    with tempfile.NamedTemporaryFile("w", suffix=".cnf", dir=directory, delete=False) as ext:
        ext.write(f"[ext]\n{extensions}\n")
    try:
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr", cwd=directory)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", str(days), "-extfile", ext.name, "-extensions", "ext", "-out", f"{name}.crt", cwd=directory)
    finally:
        Path(ext.name).unlink()
        (directory / f"{name}.csr").unlink(missing_ok=True)


def make(directory: Path) -> None:
    """Every file the cluster needs, in `directory` (made afresh for each cluster)."""
    directory.mkdir(parents=True, exist_ok=True)
    _key(directory / "ca.key")
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-subj", "/CN=airflow-gitops-live-ca", "-days", "30",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             "-out", "ca.crt", cwd=directory)
    _sign(directory, "apiserver", "/CN=kube-apiserver",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
          f"extendedKeyUsage=serverAuth\nsubjectAltName={','.join(_API_SANS)}")
    _sign(directory, "kwok-serving", "/CN=kwok",
          "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
          "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1")
    for client in CLIENTS:
        subject = f"/CN={client.common_name}" + (f"/O={client.organization}" if client.organization else "")
        _sign(directory, client.name, subject,
              "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
              "extendedKeyUsage=clientAuth")
    _key(directory / "sa.key")
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=directory)
