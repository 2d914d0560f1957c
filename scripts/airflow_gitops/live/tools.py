"""Build the local cluster's parts from Go modules, once, into a cache keyed by name, version and recipe.

Two groups, each one `go build` over one wrapper module, so that the packages the parts share compile once:

- ``k8s``  (``scripts/live/go-k8s``): kube-apiserver, kube-controller-manager and kube-scheduler from
  ``k8s.io/kubernetes`` at the clusters' minor, and etcd at the version that Kubernetes minor is tested with.
  ``k8s.io/kubernetes`` requires its staging modules at v0.0.0 and replaces them with folders of its own tree, which
  stops ``go install``; the wrapper requires it and replaces every staging module with its published v0.<minor>.<patch>
  (as kubernetes-sigs/reference-docs gen-compdocs and the autoscaler's VPA e2e module do). The binaries are stamped
  with their version as upstream's hack/lib/version.sh does: without it they report v0.0.0-master, which Helm's
  ``.Capabilities.KubeVersion`` and ``flux check --pre`` cannot parse.
- ``flux`` (``scripts/live/go-flux``): source-, kustomize-, helm- and notification-controller and the ``flux`` CLI
  at Flux 2.9.5, the ``helm`` CLI at the Helm version helm-controller uses, kwok, and kustomize (used to build the
  flux CLI's embedded manifests). The controllers' own ``replace`` lines are repeated in the wrapper.

The flux CLI embeds ``cmd/flux/manifests/*.yaml``, which upstream generates at release time and which the module
zip lacks. They are rebuilt here as upstream builds them: each controller's release assets are
``kustomize build config/crd`` and ``kustomize build config/manager`` of its module (fluxcd/gha-workflows
controller-release.yaml), and flux2's ``manifests/scripts/bundle.sh`` builds ``manifests/bases/<controller>``,
``manifests/rbac`` and ``manifests/policies`` over them. So ``flux install --export`` works offline.

Where the module proxy of this machine does not serve a version that Flux 2.9.5 pins, ``SUBSTITUTIONS`` names what
is built instead; ``live tools --list`` prints it, and the README says it.

A warm cache costs one ``go version`` and a few hashes; nothing else runs. GOMODCACHE and GOCACHE stay at Go's
defaults, so a change of one group's recipe recompiles only what changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

KUBERNETES_VERSION = "1.35.4"
"""The newest 1.35 patch the module proxy serves here; the clusters run kubernetes_version 1.35."""
ETCD_VERSION = "3.6.6"
"""k8s.io/kubernetes v1.35.4 tests with etcd 3.6.6 (hack/lib/etcd.sh, build/dependencies.yaml)."""
FLUX_VERSION = "2.9.5"
HELM_VERSION = "4.2.4"
"""The Helm that helm-controller v1.6.4 (Flux 2.9.5) links: its go.mod requires helm.sh/helm/v4 v4.2.4."""
KWOK_VERSION = "0.8.0"

# The controllers of Flux 2.9.5 (flux2 v2.9.5 manifests/bases/*/kustomization.yaml), and what is built.
FLUX_CLI = "github.com/fluxcd/flux2/v2/cmd/flux"
FLUX_CONTROLLERS = {
    "source-controller": "1.9.5",
    "kustomize-controller": "1.9.5",
    "helm-controller": "1.6.4",
    "notification-controller": "1.9.4",
}
SUBSTITUTIONS = {
    "github.com/fluxcd/notification-controller": (
        "v1.9.4", "v1.9.3", "the module proxy here refuses v1.9.4 (403); v1.9.3 is built and its config/ used, "
        "with the image tag of Flux 2.9.5 (v1.9.4) in the flux CLI's embedded manifests"),
    "github.com/fluxcd/pkg/artifact": (
        "v0.18.3", "v0.18.1", "source-controller v1.9.5 requires v0.18.3, which the module proxy here refuses; "
        "v0.18.1 is the newest v0.18 it serves (go.mod replace)"),
}

RECIPE = "4"
"""Bumped when a build flag, the package list or the manifest generation changes: part of every cache key."""

ENV_CACHE = "AIRFLOW_GITOPS_CACHE"
ENV_REQUIRE = "AIRFLOW_GITOPS_REQUIRE_LIVE_TOOLS"
"""Set by .ci/run: a test that needs a built tool fails instead of skipping."""

_VERSION_PACKAGES = ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version")


@dataclasses.dataclass(frozen=True)
class Group:
    name: str
    version: str
    wrapper: str
    """Folder of the wrapper module, relative to the repository."""
    packages: tuple[str, ...]
    ldflags: str
    tags: str = ""

    def binaries(self) -> list[str]:
        return [_binary_name(package) for package in self.packages]


def _go_output_name(package: str) -> str:
    """The file `go build -o DIR/` writes: the last path element, a major-version suffix skipped (.../v5)."""
    parts = package.rstrip("/").split("/")
    last = parts[-1]
    return parts[-2] if last.startswith("v") and last[1:].isdigit() else last


def _binary_name(package: str) -> str:
    if package.startswith("./"):
        return _go_output_name(package)
    # etcd's main package is the module root go.etcd.io/etcd/server/v3, which go build would call `server`.
    return "etcd" if package == "go.etcd.io/etcd/server/v3" else _go_output_name(package)


def _kubernetes_ldflags(version: str) -> str:
    major, minor = version.split(".")[:2]
    flags = ["-s", "-w"]
    for package in _VERSION_PACKAGES:
        for key, value in (("gitVersion", f"v{version}"), ("gitMajor", major), ("gitMinor", minor),
                           ("gitTreeState", "clean"), ("gitCommit", "module-build"),
                           ("buildDate", "1970-01-01T00:00:00Z")):
            flags.append(f"-X {package}.{key}={value}")
    return " ".join(flags)


GROUPS = {
    "k8s": Group(
        name="k8s",
        version=f"v{KUBERNETES_VERSION}",
        wrapper="scripts/live/go-k8s",
        packages=("k8s.io/kubernetes/cmd/kube-apiserver", "k8s.io/kubernetes/cmd/kube-controller-manager",
                  "k8s.io/kubernetes/cmd/kube-scheduler", "go.etcd.io/etcd/server/v3"),
        ldflags=_kubernetes_ldflags(KUBERNETES_VERSION),
        # As upstream's hack/lib/golang.sh builds them (selinux is a no-op without cgo).
        tags="selinux,notest",
    ),
    "flux": Group(
        name="flux",
        version=f"v{FLUX_VERSION}",
        wrapper="scripts/live/go-flux",
        packages=("github.com/fluxcd/source-controller", "github.com/fluxcd/kustomize-controller",
                  "github.com/fluxcd/helm-controller", "github.com/fluxcd/notification-controller",
                  "github.com/fluxcd/flux2/v2/cmd/flux", "helm.sh/helm/v4/cmd/helm", "sigs.k8s.io/kwok/cmd/kwok",
                  "sigs.k8s.io/kustomize/kustomize/v5"),
        ldflags=" ".join(["-s", "-w", f"-X main.VERSION={FLUX_VERSION}",
                          f"-X helm.sh/helm/v4/internal/version.version=v{HELM_VERSION}",
                          f"-X sigs.k8s.io/kwok/pkg/consts.Version={KWOK_VERSION}"]),
    ),
}
TOOLS = {binary: group.name for group in GROUPS.values() for binary in group.binaries()}


class ToolsUnavailable(RuntimeError):
    """Go is missing, or a build failed: the message says which and what to do."""


def repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def cache_root() -> Path:
    base = os.environ.get(ENV_CACHE) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "airflow-gitops")
    return Path(base)


def go_binary() -> str | None:
    return shutil.which("go")


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    # Fail fast instead of downloading another toolchain; no cgo (static binaries, as upstream builds them).
    env.update({"GOTOOLCHAIN": "local", "CGO_ENABLED": "0", "GOFLAGS": "-mod=readonly", "GOWORK": "off"})
    return env


def _go_version(go: str) -> str:
    return subprocess.run([go, "version"], capture_output=True, text=True, check=True).stdout.strip()


def cache_key(group: Group, go_version: str, repo: Path | None = None) -> str:
    """What decides the bytes of the group's binaries: Go, the platform, the recipe, the wrapper module, flags."""
    repo = repo or repo_root()
    digest = hashlib.sha256()
    wrapper = repo / group.wrapper
    for part in (go_version, f"{sys.platform}/{platform.machine()}", RECIPE, group.version, group.ldflags, group.tags,
                 "\n".join(group.packages), (wrapper / "go.mod").read_text(), (wrapper / "go.sum").read_text()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def bin_dir(group: Group, key: str) -> Path:
    return cache_root() / "bin" / f"{group.name}-{group.version}-{key}"


def _complete(directory: Path, group: Group) -> bool:
    return (directory / "manifest.json").is_file() and all(
        os.access(directory / name, os.X_OK) for name in group.binaries())


def find_tool(name: str) -> Path | None:
    """The built binary `name` of the current recipe, or None when it is not built (or Go is missing)."""
    group_name = TOOLS.get(name)
    go = go_binary()
    if group_name is None or go is None:
        return None
    group = GROUPS[group_name]
    directory = bin_dir(group, cache_key(group, _go_version(go)))
    return directory / name if _complete(directory, group) else None


def require_tool(name: str) -> Path:
    path = find_tool(name)
    if path is None:
        raise ToolsUnavailable(f"{name} is not built: run `make live-tools` (Go {'missing' if not go_binary() else 'found'})")
    return path


def tool_dir(group_name: str) -> Path | None:
    found = find_tool(GROUPS[group_name].binaries()[0])
    return found.parent if found else None


def _log(message: str) -> None:
    print(f"[live-tools] {message}", file=sys.stderr, flush=True)


def _run(argv: Sequence[str], cwd: Path, env: dict[str, str] | None = None, log: Path | None = None) -> str:
    result = subprocess.run(list(argv), cwd=cwd, env=env or _go_env(), capture_output=True, text=True)
    if log is not None:
        with log.open("a") as out:
            out.write(f"$ {' '.join(argv)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-25:])
        raise ToolsUnavailable(f"`{' '.join(argv[:3])} …` failed in {cwd} (exit {result.returncode}):\n{tail}")
    return result.stdout


def _module_dir(go: str, module: str, version: str, cwd: Path) -> Path:
    """The module's source in GOMODCACHE, downloaded through the proxy if need be."""
    env = _go_env()
    env["GOFLAGS"] = "-mod=mod"
    out = _run([go, "mod", "download", "-json", f"{module}@{version}"], cwd=cwd, env=env)
    info = json.loads(out)
    if info.get("Error"):
        raise ToolsUnavailable(f"{module}@{version}: {info['Error']}")
    return Path(info["Dir"])


def _copy_writable(source: Path, target: Path) -> None:
    if target.exists():
        _make_writable(target)
        shutil.rmtree(target)
    shutil.copytree(source, target, symlinks=True)
    _make_writable(target)


def _make_writable(root: Path) -> None:
    for path in (root, *root.rglob("*")):
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | stat.S_IWUSR)


def _build(go: str, group: Group, workdir: Path, out: Path, packages: Iterable[str], log: Path) -> None:
    argv = [go, "build", "-trimpath", "-buildvcs=false", "-pgo=off", f"-ldflags={group.ldflags}", "-o", f"{out}/"]
    if group.tags:
        argv.insert(2, f"-tags={group.tags}")
    _run([*argv, *packages], cwd=workdir, log=log)
    for package in packages:
        if _go_output_name(package) != _binary_name(package):
            (out / _go_output_name(package)).rename(out / _binary_name(package))


def _prepare_workdir(group: Group, repo: Path, key: str) -> Path:
    """A copy of the wrapper module outside the repository (CI clones elsewhere; a fixed path keeps cache hits)."""
    workdir = cache_root() / "build" / f"{group.name}-{group.version}-{key}"
    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("go.mod", "go.sum"):
        shutil.copyfile(repo / group.wrapper / name, workdir / name)
    return workdir


# flux2 v2.9.5 manifests/bases: the four controllers `flux install` installs by default. The image automation
# controllers and source-watcher are left out: their modules are not built, so `--components-extra` is not offered.
_DEFAULT_COMPONENTS = ("source-controller", "kustomize-controller", "helm-controller", "notification-controller")


def _flux_manifests(go: str, flux2: Path, workdir: Path, kustomize: Path, log: Path) -> None:
    """cmd/flux/manifests/*.yaml as flux2's bundle.sh makes them, from the controllers' own config/ folders."""
    target = flux2 / "cmd" / "flux" / "manifests"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="flux-manifests-") as tmp:
        scratch = Path(tmp)
        for component in _DEFAULT_COMPONENTS:
            module = f"github.com/fluxcd/{component}"
            wanted = f"v{FLUX_CONTROLLERS[component]}"
            built = SUBSTITUTIONS.get(module, (wanted, wanted, ""))[1]
            source = _module_dir(go, module, built, workdir)
            base = scratch / component
            shutil.copytree(flux2 / "manifests" / "bases" / component, base)
            _make_writable(base)
            # The release assets, as fluxcd/gha-workflows controller-release.yaml builds them.
            crds = _run([str(kustomize), "build", str(source / "config" / "crd")], cwd=scratch)
            deployment = _run([str(kustomize), "build", str(source / "config" / "manager")], cwd=scratch)
            if built != wanted:
                deployment = deployment.replace(f":{built}", f":{wanted}")
            (base / f"{component}.crds.yaml").write_text(crds)
            (base / f"{component}.deployment.yaml").write_text(deployment)
            kustomization = base / "kustomization.yaml"
            text = kustomization.read_text()
            prefix = f"https://github.com/fluxcd/{component}/releases/download/{wanted}/"
            if prefix not in text:
                raise ToolsUnavailable(f"flux2 manifests/bases/{component} does not name {prefix}: recipe is stale")
            kustomization.write_text(text.replace(prefix, ""))
            (target / f"{component}.yaml").write_text(_run([str(kustomize), "build", str(base)], cwd=scratch, log=log))
        for name in ("rbac", "policies"):
            (target / f"{name}.yaml").write_text(
                _run([str(kustomize), "build", str(flux2 / "manifests" / name)], cwd=scratch, log=log))


def build_group(group: Group, repo: Path | None = None, force: bool = False) -> Path:
    """Build the group into its cache folder unless it is there; returns the folder."""
    repo = repo or repo_root()
    go = go_binary()
    if go is None:
        raise ToolsUnavailable("Go is not installed: the local cluster's parts are built from Go modules "
                               "(Go 1.26 and the Go module proxy)")
    key = cache_key(group, _go_version(go), repo)
    target = bin_dir(group, key)
    if _complete(target, group) and not force:
        return target
    started = time.monotonic()
    workdir = _prepare_workdir(group, repo, key)
    staging = Path(tempfile.mkdtemp(prefix=f".{group.name}-", dir=target.parent if target.parent.exists()
                                    else _mkdir(target.parent)))
    log = staging / "build.log"
    _log(f"building {group.name} {group.version}: {', '.join(group.binaries())} (log: {log})")
    packages = [package for package in group.packages if package != FLUX_CLI]
    _build(go, group, workdir, staging, packages, log)
    if FLUX_CLI in group.packages:
        # The flux CLI builds in a copy of its own module, with its own go.sum: in the wrapper, minimal version
        # selection would raise a library it shares with helm and kwok (olekukonko/tablewriter) past its API.
        flux2 = workdir / "flux2"
        _copy_writable(_module_dir(go, "github.com/fluxcd/flux2/v2", f"v{FLUX_VERSION}", workdir), flux2)
        _flux_manifests(go, flux2, workdir, staging / "kustomize", log)
        _build(go, group, flux2, staging, ["./cmd/flux"], log)
    manifest = {
        "group": group.name,
        "version": group.version,
        "key": key,
        "go": _go_version(go),
        "recipe": RECIPE,
        "seconds": round(time.monotonic() - started, 1),
        "substitutions": {module: {"wanted": w, "built": b, "why": why}
                          for module, (w, b, why) in SUBSTITUTIONS.items()} if group.name == "flux" else {},
        "binaries": {name: (f"github.com/fluxcd/flux2/v2@v{FLUX_VERSION}" if name == "flux"
                            else _main_module(go, staging / name)) for name in group.binaries()},
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
    _log(f"built {group.name} in {manifest['seconds']:.0f} s into {target}")
    return target


def _main_module(go: str, binary: Path) -> str:
    """`path@version` of the module a binary's main package came from, as `go version -m` reads it."""
    for line in _run([go, "version", "-m", str(binary)], cwd=binary.parent).splitlines():
        fields = line.split("\t")
        if len(fields) >= 3 and fields[1] == "mod":
            return f"{fields[2]}@{fields[3] if len(fields) > 3 else ''}"
    return "unknown"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_all(names: Iterable[str] | None = None, force: bool = False) -> dict[str, Path]:
    return {name: build_group(GROUPS[name], force=force) for name in (names or GROUPS)}


def describe() -> list[str]:
    """One line per part: name, version, where it is (or that it is not built)."""
    lines = []
    for group in GROUPS.values():
        directory = tool_dir(group.name)
        where = str(directory) if directory else "not built (make live-tools)"
        lines.append(f"{group.name} {group.version}: {', '.join(group.binaries())} -> {where}")
    for module, (wanted, built, why) in SUBSTITUTIONS.items():
        lines.append(f"substitution: {module} {wanted} -> {built}: {why}")
    return lines
