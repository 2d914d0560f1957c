"""The tables `make bench` prints from the local cluster's runs (live/bench.py): medians per path and per stage,
and the rollback tool's lines read as stages. The runs themselves are in `make bench`, not in a test."""

from __future__ import annotations

from airflow_gitops.live import bench


def run(path: str, total: float, stages: tuple[float, ...], names=bench.STAGES) -> bench.Run:
    return bench.Run(path, total, dict(zip(names, stages, strict=True)))


def test_each_path_gets_the_median_of_its_runs_and_of_each_stage():
    rows = bench.table([run("commit by poll", 40, (30, 2, 1, 6, 1)), run("commit by poll", 50, (40, 2, 1, 6, 1)),
                        run("commit by poll", 90, (45, 3, 1, 40, 1)), run("commit by webhook", 9, (1, 2, 1, 4, 1))])
    assert len(rows) == 3
    poll = rows[1].split()
    assert poll[:4] == ["commit", "by", "poll", "50.0s"] and "40.0s" in poll and "6.0s" in poll
    assert rows[2].split()[3] == "9.0s"


def test_the_rollback_tool_s_lines_are_its_stages():
    assert bench._stage_of("# step 1: pushed to origin/main") == "step 1 pushed"
    assert bench._stage_of("# step 2: merged into main after 40 s") == "step 2 pushed"
    assert bench._stage_of("# kind: Airflow stopped and the schema at 3.2.2 after 95 s") == "live"
    assert bench._stage_of("# kind: waiting for the running Job(s) x to finish") is None
    assert bench._stage_of("git revert --no-edit abc") is None


def test_the_rollback_row_is_the_median_of_its_runs():
    names = bench.ROLLBACK_STAGES
    rows = bench.rollback_table([run("r", 300, (5, 200, 5, 90), names), run("r", 320, (5, 210, 5, 100), names),
                                 run("r", 900, (5, 800, 5, 90), names)])
    assert rows[1].split()[4] == "320.0s" and "210.0s" in rows[1]
    assert bench.rollback_table([]) == []
