"""Golden (snapshot) tests of the engine on small fixture repositories, apart from this repository's YAML.

Each folder `tests/testdata/<case>/` holding a `case.toml` is a minimal repository (clusters/<cluster>/ with Flux
Kustomizations, a few manifests, values files) and its expected outputs:

- `args` in case.toml is an `airflow-gitops` command line, run with `--repo <case>` in a subprocess (the CLI is the
  engine's most stable entry point); its stdout is compared with `expected.yaml`, its exit code and stderr with
  `expected.txt`.
- A `diff` case has two trees, `base/` and `head/`, compared with the diff functions (`rendered_diff.rendered_objects`
  and `rendered_diff.unified`, what `airflow-gitops diff` prints) into `expected.txt`. Those functions, not the `diff`
  command: the command also reports the Airflow version change, which needs an `airflow` HelmRelease these fixtures do
  not have.

Charts come only from `tests/testdata/charts/` through `--chart NAME=PATH` (`{charts}` in args), never from the
network or AIRFLOW_GITOPS_CHARTS, so every case renders in CI too. Nothing here reads clusters/, apps/ or
charts-values/ of this repository: editing them cannot break these tests.

After a deliberate change of the engine's output, rewrite the golden files and review their diff:

    UPDATE_GOLDEN=1 PYTHONPATH=$PWD/scripts .venv/bin/pytest tests/engine -q -p no:cacheprovider
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
from airflow_gitops import rendered_diff
from airflow_gitops.settings import CACHE_ENV, CHARTS_ENV, Settings

from tests.helpers import REPO, skip_for

TESTDATA = REPO / "tests" / "testdata"
CASES = sorted(case.parent.name for case in TESTDATA.glob("*/case.toml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def engine_env(cache: Path) -> dict[str, str]:
    """The caller's environment without chart overrides, with an empty cache: charts come from the case only."""
    env = {k: v for k, v in os.environ.items() if k != CHARTS_ENV}
    env[CACHE_ENV] = str(cache)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "scripts"), env.get("PYTHONPATH")]))
    return env


def portable(text: str, *machine_paths: Path) -> str:
    """Machine-specific paths replaced by placeholders, so a golden file is the same on every machine."""
    for path, placeholder in ((TESTDATA, "<testdata>"), *((p, "<tmp>") for p in machine_paths)):
        text = text.replace(str(path.resolve()), placeholder).replace(str(path), placeholder)
    return text


def run_cli(case: Path, args: list[str], cache: Path) -> tuple[str, str]:
    argv = [arg.replace("{charts}", str(TESTDATA / "charts")) for arg in args]
    # From a folder outside the repository, so that only --repo can lead the tool to its input.
    result = subprocess.run([sys.executable, "-m", "airflow_gitops", *argv, "--repo", str(case)], cwd=cache,
                            env=engine_env(cache), capture_output=True, text=True, timeout=300)
    messages = f"exit code: {result.returncode}\n{result.stderr}"
    return portable(result.stdout, cache), portable(messages, cache)


def run_diff(case: Path, args: list[str], cache: Path) -> str:
    cluster = args[1]
    sides = [rendered_diff.rendered_objects(Settings(case / side, cache_dir=cache), cluster) for side in ("base", "head")]
    return portable("".join(rendered_diff.unified(*sides, ref="base")), cache)


def compare(golden: Path, actual: str) -> None:
    assert str(REPO) not in actual and tempfile.gettempdir() + "/" not in actual, \
        f"{golden.name} would hold a machine-specific path:\n{actual}"
    if UPDATE:
        golden.write_text(actual)
    assert golden.exists(), f"{golden} is missing: write it with UPDATE_GOLDEN=1 and review it"
    assert actual == golden.read_text(), f"output differs from {portable(str(golden))} (UPDATE_GOLDEN=1 rewrites it)"


@pytest.mark.parametrize("name", CASES)
def test_engine_output_matches_the_golden_files(name, tmp_path):
    case = TESTDATA / name
    args = tomllib.loads((case / "case.toml").read_text())["args"]
    if args[0] == "diff":
        compare(case / "expected.txt", run_diff(case, args, tmp_path))
        return
    output, messages = run_cli(case, args, tmp_path)
    compare(case / "expected.yaml", output)
    compare(case / "expected.txt", messages)


def test_every_fixture_folder_is_a_case():
    """A fixture folder without case.toml would be silently skipped."""
    folders = sorted(p.name for p in TESTDATA.iterdir() if p.is_dir() and p.name != "charts")
    assert folders == CASES


def test_a_changed_engine_output_fails_against_the_golden_file(tmp_path):
    golden = tmp_path / "expected.yaml"
    golden.write_text("greeting: hello\n")
    if UPDATE:
        skip_for("golden-update", "UPDATE_GOLDEN=1 rewrites instead of comparing")
    with pytest.raises(AssertionError, match="output differs"):
        compare(golden, "greeting: changed\n")
