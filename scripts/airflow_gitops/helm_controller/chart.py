"""The chart of a HelmRelease, as helm-controller's source side gets it: a local override, the cache, or a pull
from its HelmRepository."""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from airflow_gitops.helm_controller.api import HelmRelease
from airflow_gitops.model import WARNING, ClusterState, Finding, Resource
from airflow_gitops.policy_config import SOURCE_ALLOWLISTS, PolicyConfig
from airflow_gitops.settings import CHARTS_ENV, Settings
from airflow_gitops.source.api import HelmRepository, parse_source, url_of

log = logging.getLogger(__name__)
# What a chart name and version in a repository index can be (Helm's chart name rules; SemVer 2 characters). Both
# become a path in the chart cache, so nothing else, `../` least of all, gets that far.
CHART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
CHART_VERSION = re.compile(r"^v?[0-9A-Za-z][0-9A-Za-z.+-]{0,127}$")


class ChartUnavailable(Exception):
    pass


class ChartCache:
    """Charts loaded by this process, and the charts that could not be had, so that `validate all` and `bench`
    load each chart once and ask the network for a missing one once. One per process by default (`PROCESS`);
    pass another to start from nothing."""

    def __init__(self) -> None:
        self.loaded: dict[Path, Any] = {}
        # (chart, version, repository URL) -> why it could not be fetched.
        self.unavailable: dict[tuple[str, str, str], str] = {}
        self.warned: set[str] = set()
        # id(loaded chart) -> digest of its content, the render cache's key part (charts stay loaded, ids stable).
        self.digests: dict[int, str] = {}

    def load(self, settings: Settings, state: ClusterState, hr: Resource, policies: PolicyConfig):
        """The chart of a HelmRelease: a local override, the cache folder, or its HelmRepository, in that order. A
        repository is asked only when the policy configuration allows its URL (`allowed-helm-repositories`): a chart
        from anywhere else is never fetched, so a pull request cannot make the tool connect where it chose (the
        `source-origin` check reports the URL)."""
        chart = HelmRelease.parse(hr).chart
        if chart is None:
            raise ChartUnavailable("spec.chartRef (OCIRepository/HelmChart) rendering is not supported offline")
        name, version = chart.chart, chart.version
        local = settings.local_charts.get(name)
        if local:
            loaded = self._load(local)
            if loaded.name != name or loaded.version != version:
                message = (f"rendering {hr.ref} with local chart {loaded.name} {loaded.version} from {local}, "
                           f"but the manifests pin {name} {version}: output may differ from what Flux installs")
                if message not in self.warned:
                    self.warned.add(message)
                    log.warning(message)
                state.findings.append(Finding(WARNING, hr.source_file, hr.ref, "spec.chart.spec.version", message,
                                              "chart"))
            return loaded
        repository = state.find(chart.source_kind, chart.source_name, chart.source_namespace or hr.namespace)
        if repository is None:
            raise ChartUnavailable(f"{chart.source_kind} {chart.source_name} is not applied by this cluster")
        source = parse_source(repository)
        if not isinstance(source, HelmRepository) or source.type == "oci":
            raise ChartUnavailable(f"a chart from {repository.kind} {repository.namespace}/{repository.name} "
                                   f"{'(OCI) ' if isinstance(source, HelmRepository) else ''}is not rendered offline; "
                                   f"give a local chart: --chart {name}=PATH")
        url = url_of(source)
        if not policies.source_url_allowed("helm", url):
            raise ChartUnavailable(f"not fetched: the URL of HelmRepository {repository.namespace}/{repository.name} "
                                   f"is not in {SOURCE_ALLOWLISTS['helm']} of the policy configuration")
        if not (CHART_NAME.match(name) and CHART_VERSION.match(version)):
            raise ChartUnavailable(f"chart {name!r} version {version!r} is not a chart name and version a repository "
                                   "serves: not fetched, and no cache path is made of it")
        host = re.sub(r"[^A-Za-z0-9.-]", "_", url.split("://", 1)[-1].strip("/"))
        cached = settings.cache_dir / "charts" / host / f"{name}-{version}.tgz"
        if not cached.exists():
            if (name, version, url) in self.unavailable:
                raise ChartUnavailable(self.unavailable[(name, version, url)])
            try:
                _pull(name, version, url, cached)
            except ChartUnavailable as reason:
                self.unavailable[(name, version, url)] = str(reason)
                raise
        return self._load(cached)

    def path_of(self, chart) -> Path:
        """Where a chart this cache loaded was loaded from: what the render process loads it from too."""
        return next(path for path, loaded in self.loaded.items() if loaded is chart)

    def _load(self, path: Path):
        import helm_python

        if path not in self.loaded:
            if not path.exists():
                raise ChartUnavailable(f"local chart {path} does not exist")
            from airflow_gitops.helm_controller.render_cache import chart_digest

            try:
                self.loaded[path] = helm_python.Chart.load(str(path))
            except Exception as error:  # the SDK raises its own error types for a chart it cannot load
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ChartBroken(f"chart {path} cannot be loaded: {first}") from None
            self.digests[id(self.loaded[path])] = chart_digest(path)
        return self.loaded[path]


class ChartBroken(Exception):
    """A chart that is there but is no chart Helm can load (no Chart.yaml, broken YAML): an error of the release,
    not a missing chart."""


PROCESS = ChartCache()


def _pull(name: str, version: str, url: str, destination: Path) -> None:
    import helm_python

    if url.startswith("oci://"):
        raise ChartUnavailable(f"OCI HelmRepository {url} is not supported; give a local chart")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            helm_python.pull(name, repo_url=url, version=version, destination=tmp)
        except Exception as error:  # the SDK raises several error types for network and index problems
            raise ChartUnavailable(
                f"chart {name} {version} from {url} is not in the cache ({destination}) and could not be fetched "
                f"({type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}). "
                f"Offline, point at a local copy: --chart {name}=PATH or {CHARTS_ENV}={name}=PATH"
            ) from error
        files = list(Path(tmp).glob("*.tgz"))
        if not files:
            raise ChartUnavailable(f"pulling chart {name} {version} from {url} produced no archive")
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(files[0]), destination)
