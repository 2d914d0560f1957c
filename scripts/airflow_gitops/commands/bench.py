"""`bench`: warm timings of render and validate, `validate all` as a ratio of the serial floor (the same releases
rendered bare by the Helm SDK, one after the other, in a fresh process with Go's default settings) with a cold, a
warm and a one-value-changed render cache, each DAG file's parse time, the push-to-live bounds the manifests imply,
and the push-to-live latencies measured on the local cluster (`live/bench.py`: commit, webhook and revert, each
split into source, build and apply, Helm upgrade, readiness and Ready).

Without Airflow (`pip install .` alone) it prints everything but the DAG parse times, says what to install, and
exits 2; `--skip-dags` leaves them out on purpose.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from airflow_gitops.checks.validation import validate_clusters
from airflow_gitops.dev import extras
from airflow_gitops.model import ClusterState
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings, add_common_options
from airflow_gitops.source.repository import cluster_names

RENDER_TARGET_S = 3.0
VALIDATE_ALL_TARGET_S = 10.0
DAG_PARSE_TARGET_S = 0.3
# `validate all` with an empty render cache, against the same releases rendered bare one after the other.
RATIO_TARGET = 0.8


def configure(parser) -> None:
    add_common_options(parser)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs to take the median of (default 3)")
    parser.add_argument("--skip-dags", action="store_true", help="skip the DAG parse times (they start Airflow)")
    parser.add_argument("--live-runs", type=int, default=3, metavar="N",
                        help="commits (and their reverts) per path measured on the local cluster (default 3)")
    parser.add_argument("--skip-live", action="store_true",
                        help="skip the latencies measured on the local cluster (it takes about ten minutes)")


def _median(fn, repeat: int) -> float:
    fn()  # warm: chart loaded and cached, schemas parsed, imports done
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def _row(label: str, value: float, target: float | None, unit: str = "s") -> str:
    verdict = "" if target is None else ("ok" if value <= target else "OVER TARGET")
    limit = "" if target is None else f"<= {target:g} {unit}"
    return f"  {label:<44} {value:8.2f} {unit}  {limit:<10} {verdict}"


def run(args) -> int:
    from airflow_gitops.operate import latency

    settings = Settings.from_args(args)
    clusters = cluster_names(settings.repo)
    over = False
    print(f"render / validate (median of {args.repeat} warm runs)")
    states: dict[str, ClusterState] = {}
    for cluster in clusters:
        value = _median(lambda c=cluster: states.__setitem__(c, render_cluster(settings, c)), args.repeat)
        unrendered = [r.helmrelease.name for r in states[cluster].releases if r.unrendered_reason]
        print(_row(f"render {cluster}", value, RENDER_TARGET_S)
              + (f"  (charts not at hand: {', '.join(unrendered)})" if unrendered else ""))
        over |= value > RENDER_TARGET_S

    def validate_all():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            validate_clusters(settings, clusters)

    value = _median(validate_all, args.repeat)
    print(_row("validate all", value, VALIDATE_ALL_TARGET_S))
    over |= value > VALIDATE_ALL_TARGET_S
    over |= _ratios(settings, clusters, args.repeat)

    dags_missing = None if args.skip_dags else extras.airflow_missing("bench")
    if dags_missing:
        print(f"DAG parse times NOT MEASURED: {dags_missing}; or pass --skip-dags", file=sys.stderr)
    elif not args.skip_dags:
        from airflow_gitops.dev.dagparse import parse_times

        print("DAG parse time per file (as the dag-processor measures it)")
        for file, seconds in parse_times(settings.repo / "dags"):
            print(_row(str(file), seconds, DAG_PARSE_TARGET_S))
            over |= seconds > DAG_PARSE_TARGET_S

    for cluster in clusters:
        print(f"push-to-live worst case, {cluster} (from the manifests and values)")
        for item in latency.push_to_live(states[cluster]):
            print(_row(item.path, item.seconds, item.target) + f"  {item.breakdown}")
            over |= item.verdict == "OVER TARGET"
    live_missing = None if args.skip_live else _live_latencies(settings, args.live_runs)
    if live_missing:
        print(f"push-to-live on the local cluster NOT MEASURED: {live_missing}; or pass --skip-live", file=sys.stderr)
    if dags_missing or live_missing:
        return 2
    return 1 if over else 0


def _live_latencies(settings: Settings, runs: int) -> str | None:
    """Measure on the local cluster and print the table; the reason when it cannot run here."""
    from airflow_gitops.live import bench, cluster, tools

    if tools.go_binary() is None:
        return "Go is not installed; the cluster's parts are built from Go modules (docs/live-cluster.md)"
    charts = cluster.default_charts(settings.repo.parent / "shared" / "charts")
    if "airflow" not in charts:
        return f"no Airflow chart package in {settings.repo.parent / 'shared' / 'charts'}"
    try:
        tools.build_all()
        print(f"push-to-live measured on the local cluster (kind, its own intervals; median of {runs} runs, seconds "
              "from the push; each stage from the previous one)", flush=True)
        results = bench.measure(settings.repo, charts, runs, log=lambda line: print(f"  [live] {line}",
                                                                                      file=sys.stderr, flush=True))
    except (tools.ToolsUnavailable, RuntimeError) as error:
        return str(error)
    for line in bench.table(results):
        print(line)
    return _rollback_latency(settings, charts, runs)


def _rollback_latency(settings: Settings, charts: dict, runs: int) -> str | None:
    """The whole two-step Airflow rollback on a cluster of its own, the migrate Jobs run for real on a local
    PostgreSQL 15 (the one at $AIRFLOW_GITOPS_TEST_DATABASE_URL, else one started here), from each release's venv."""

    import psycopg

    from airflow_gitops.dev import localpg
    from airflow_gitops.dev.airflow_venvs import airflow_venv
    from airflow_gitops.live import bench

    log = lambda line: print(f"  [live] {line}", file=sys.stderr, flush=True)  # noqa: E731
    try:
        venvs = {version: airflow_venv(version) for version in (bench.ROLLBACK_FROM, bench.ROLLBACK_TO)}
    except Exception as error:  # pip without the package index, a failed install: said, not raised
        return f"the Airflow venvs of the rollback ({error}); `python -m airflow_gitops.dev.airflow_venvs " \
            f"{bench.ROLLBACK_FROM} {bench.ROLLBACK_TO}` makes them"
    directory, server = None, os.environ.get(localpg.ENV_URL)
    try:
        if not server:
            directory = tempfile.mkdtemp(prefix="airflow-gitops-bench-pg-")
            server = localpg.start(directory).url
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_rollback WITH (FORCE)")
            conn.execute("CREATE DATABASE bench_rollback")
        database = server.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg2://", 1) + "/bench_rollback"
        print(f"the two-step Airflow rollback on the local cluster (median of {runs} runs, seconds from the start of "
              "`make rollback`; the migrate Jobs run for real on PostgreSQL 15)", flush=True)
        results = bench.measure_rollback(settings.repo, charts, database, venvs, runs, log=log)
    except (localpg.PostgresUnavailable, RuntimeError) as error:
        return str(error)
    finally:
        if directory:
            localpg.stop(directory, purge=True)
            shutil.rmtree(directory, ignore_errors=True)
    for line in bench.rollback_table(results):
        print(line)
    return None


def _serial_floor(settings: Settings, clusters: list[str]):
    """Each rendered release of every cluster, to render bare with the Helm SDK, one after the other: the floor.
    None when no chart is at hand."""
    from airflow_gitops.helm_controller.chart import PROCESS
    from airflow_gitops.policy_config import PolicyConfig

    calls = []
    policies = PolicyConfig.load(settings.repo)
    for cluster in clusters:
        state = render_cluster(settings, cluster)
        for release in state.releases:
            if release.unrendered_reason:
                continue
            chart = PROCESS.load(settings, state, release.helmrelease, policies)
            path = PROCESS.path_of(chart)
            calls.append((chart, path, release))
    if not calls:
        return None

    def floor():
        for chart, _, release in calls:
            chart.render(release.values, name=release.release_name, namespace=release.namespace, is_install=True)

    return floor, [(path, release) for _, path, release in calls]


# The floor as anyone would call the SDK: a fresh interpreter with Go's default collector settings. It renders once
# to warm up, then once more per line it reads, and prints each serial render's seconds.
_BARE_FLOOR = """
import json, sys, time
import helm_python
calls = json.load(open(sys.argv[1]))
charts = {path: helm_python.Chart.load(path) for path in {call["chart"] for call in calls}}
def floor():
    for call in calls:
        charts[call["chart"]].render(call["values"], name=call["name"], namespace=call["namespace"], is_install=True)
floor()
for _ in sys.stdin:
    start = time.perf_counter()
    floor()
    print(time.perf_counter() - start, flush=True)
"""


class _BareFloor:
    """The same serial renders in a child process started without the tool's Go settings (go_runtime.py)."""

    def __init__(self, calls, directory: Path) -> None:
        import json
        import os
        import subprocess

        from airflow_gitops import go_runtime

        spec = directory / "floor-calls.json"
        spec.write_text(json.dumps([{"chart": str(path), "values": release.values, "name": release.release_name,
                                     "namespace": release.namespace} for path, release in calls], default=str))
        environment = {k: v for k, v in os.environ.items() if k not in go_runtime.SETTINGS}
        self.process = subprocess.Popen([sys.executable, "-c", _BARE_FLOOR, str(spec)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True, env=environment)
        if self.process.stdin is None or self.process.stdout is None:
            raise RuntimeError("the serial floor's process has no pipes")
        self.stdin, self.stdout = self.process.stdin, self.process.stdout

    def __call__(self) -> float:
        self.stdin.write("go\n")
        self.stdin.flush()
        return float(self.stdout.readline())

    def close(self) -> None:
        self.stdin.close()
        self.process.wait()


def _changed_copy(settings: Settings, release, destination: Path) -> str | None:
    """A copy of the repository's desired state with one value of `release` changed (an annotation added in one of
    its values files); what was changed, or None when no such value is known."""
    key = next((k for k in ("airflowPodAnnotations", "podAnnotations", "labels")
                if k in (release.chart_values_keys or ())), None)
    files = [f for f in release.values_files if (settings.repo / f).is_file()]
    # The cluster's own values file where there is one (named after the cluster), else the last one applied.
    files.sort(key=lambda f: Path(f).stem in cluster_names(settings.repo))
    if key is None or not files:
        return None
    for part in ("clusters", "infrastructure", "apps", "charts-values", "dags", "pyproject.toml"):
        source = settings.repo / part
        if source.is_dir():
            shutil.copytree(source, destination / part)
        elif source.is_file():
            shutil.copy(source, destination / part)
    target = destination / files[-1]
    values = yaml.safe_load(target.read_text()) or {}
    values[key] = {**(values.get(key) or {}), "airflow-gitops/bench": "one-value-changed"}
    target.write_text(yaml.safe_dump(values, sort_keys=False))
    return f"{files[-1]}: {key}"


def _ratios(settings: Settings, clusters: list[str], repeat: int) -> bool:
    """`validate all` against the serial floor, side by side (interleaved, warm processes): with an empty render
    cache, with a warm one, and with a warm one after one value changed. True when the cold ratio is over target."""
    floor = _serial_floor(settings, clusters)
    if floor is None:
        print("validate all vs the serial floor NOT MEASURED: no chart at hand (give --chart NAME=PATH)",
              file=sys.stderr)
        return False
    render_floor, calls = floor
    releases = [release for _, release in calls]
    with tempfile.TemporaryDirectory(prefix="airflow-gitops-bench-") as tmp:
        cold_cache, warm_cache, snapshot = Path(tmp, "cold"), Path(tmp, "warm"), Path(tmp, "snapshot")
        changed_repo = Path(tmp, "repo")
        changed = _changed_copy(settings, releases[0], changed_repo)
        bare_floor = _BareFloor(calls, Path(tmp))
        cold = dataclasses.replace(settings, cache_dir=cold_cache, render_cache=True)
        warm = dataclasses.replace(settings, cache_dir=warm_cache, render_cache=True)
        changed_settings = dataclasses.replace(warm, repo=changed_repo)

        def quiet(run_settings):
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                validate_clusters(run_settings, clusters)

        def run_cold():
            shutil.rmtree(cold_cache / "renders", ignore_errors=True)
            start = time.perf_counter()
            quiet(cold)
            return time.perf_counter() - start

        def run_changed():
            shutil.rmtree(warm_cache, ignore_errors=True)
            shutil.copytree(snapshot, warm_cache)
            start = time.perf_counter()
            quiet(changed_settings)
            return time.perf_counter() - start

        def timed(fn):
            start = time.perf_counter()
            fn()
            return time.perf_counter() - start

        quiet(warm)  # fills the warm cache; also starts the workers and loads their charts and schemas
        shutil.copytree(warm_cache, snapshot)
        render_floor()
        run_cold()
        if changed:
            run_changed()
        runs: dict[str, list[float]] = {"floor": [], "tuned": [], "cold": [], "warm": [], "changed": []}
        for _ in range(repeat):
            runs["floor"].append(bare_floor())
            runs["tuned"].append(timed(render_floor))
            runs["cold"].append(run_cold())
            runs["warm"].append(timed(lambda: quiet(warm)))
            if changed:
                runs["changed"].append(run_changed())
        bare_floor.close()
    floor_s = statistics.median(runs["floor"])
    print(f"validate all / serial floor (median of {repeat} runs side by side)")
    print(_row(f"floor: {len(releases)} bare Helm SDK render(s), serial, Go defaults", floor_s, None))
    over = False
    rows = [("tuned", "the same renders with the tool's Go settings", None),
            ("cold", "validate all, empty render cache", RATIO_TARGET),
            ("warm", "validate all, warm, unchanged", None),
            ("changed", f"validate all, warm, one value changed ({changed})" if changed else "", None)]
    for name, label, target in rows:
        if not runs[name]:
            continue
        ratio = statistics.median(runs[name]) / floor_s
        print(_row(label, ratio, target, "x") + f"  ({statistics.median(runs[name]):.2f} s)")
        over |= target is not None and ratio > target
    return over
