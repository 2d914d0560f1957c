"""`bench`: warm timings of render and validate, each DAG file's parse time, and push-to-live latencies.

Without Airflow (`pip install .` alone) it prints everything but the DAG parse times, says what to install, and
exits 2; `--skip-dags` leaves them out on purpose.
"""

from __future__ import annotations

import contextlib
import io
import statistics
import sys
import time

from airflow_gitops.dev import extras
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.settings import Settings, add_common_options
from airflow_gitops.source.repository import cluster_names

RENDER_TARGET_S = 3.0
VALIDATE_ALL_TARGET_S = 10.0
DAG_PARSE_TARGET_S = 0.3


def configure(parser) -> None:
    add_common_options(parser)
    parser.add_argument("--repeat", type=int, default=3, help="warm runs to take the median of (default 3)")
    parser.add_argument("--skip-dags", action="store_true", help="skip the DAG parse times (they start Airflow)")


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
    from airflow_gitops.commands.validate import validate_clusters
    from airflow_gitops.operate import latency

    settings = Settings.from_args(args)
    clusters = cluster_names(settings.repo)
    over = False
    print(f"render / validate (median of {args.repeat} warm runs)")
    states = {}
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
    if dags_missing:
        return 2
    return 1 if over else 0
