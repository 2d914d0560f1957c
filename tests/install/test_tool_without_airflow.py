"""`pip install .` is the tool alone: it renders and validates with no Airflow and no PostgreSQL (issue 10, item 1).

The proof runs in a venv of its own (never the shared project venv, which holds `.[test]`): made once per
pyproject.toml hash under the tool cache with `pip install .`, no extras, so reruns only reinstall the package
itself (`--no-deps`) from a copy of scripts/ and always run the code of this checkout.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from airflow_gitops.checks.validation import validate_cluster
from airflow_gitops.dev.airflow_venvs import venvs_dir
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.settings import CHARTS_ENV

from tests.helpers import REPO, make_settings, schemas_dir

INSTALL_TIMEOUT = 900
MARKER = ".airflow-gitops-complete"
DAGS_HINT = "pip install '.[dags]'"


def project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~;\[]", r, maxsplit=1)[0].lower() for r in requirements}


# --- what pyproject.toml promises ------------------------------------------------------------------------------


def test_the_tool_requires_no_airflow_and_no_postgresql_driver():
    names = requirement_names(project()["dependencies"])
    assert not {n for n in names if n.startswith(("apache-airflow", "psycopg", "asyncpg"))}, names


def test_the_dags_extra_pins_airflow_exactly():
    assert any(re.fullmatch(r"apache-airflow==\d+\.\d+\.\d+", r) for r in project()["optional-dependencies"]["dags"])


def test_the_test_extra_brings_the_dags_extra():
    assert "airflow-gitops[dags]" in project()["optional-dependencies"]["test"]


def test_policies_read_the_tested_airflow_from_the_dags_extra():
    pin = next(r.split("==")[1] for r in project()["optional-dependencies"]["dags"] if r.startswith("apache-airflow=="))
    assert PolicyConfig.load(REPO).airflow_version == pin


def test_a_pin_in_the_dags_extra_that_differs_from_the_values_fails_validation(repo_copy):
    pyproject = repo_copy / "pyproject.toml"
    pin = re.search(r'"apache-airflow==([^"]+)"', pyproject.read_text()).group(1)
    pyproject.write_text(pyproject.read_text().replace(f'"apache-airflow=={pin}"', '"apache-airflow==3.3.1"'))
    found = [str(f) for f in validate_cluster(make_settings(repo_copy), "kind").errors]
    assert [line for line in found if re.search(r"^charts-values/airflow/common.yaml: .*airflowVersion: .*3\.3\.1", line)], found


# --- the light install itself ---------------------------------------------------------------------------------


def _staged_source(tmp: Path) -> Path:
    """What `pip install .` needs, copied: building in the checkout would leave build/ and egg-info behind."""
    shutil.copy(REPO / "pyproject.toml", tmp / "pyproject.toml")
    shutil.copytree(REPO / "scripts" / "airflow_gitops", tmp / "scripts" / "airflow_gitops",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return tmp


def _pip(venv: Path, *args: str) -> None:
    proc = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           *args], capture_output=True, text=True, timeout=INSTALL_TIMEOUT, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        pytest.fail(f"pip install {' '.join(args)} failed in {venv}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory) -> Path:
    """A venv holding `pip install .` of this checkout and nothing else."""
    key = hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()[:16]
    venv = venvs_dir() / f"tool-only-{key}"
    venv.parent.mkdir(parents=True, exist_ok=True)
    source = _staged_source(tmp_path_factory.mktemp("light-install"))
    # Two checkouts running the suite at once share the cache: one builds or refreshes the venv at a time.
    with open(venv.parent / f"tool-only-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / MARKER).is_file():
            _pip(venv, "--no-deps", "--force-reinstall", str(source))
        else:
            shutil.rmtree(venv, ignore_errors=True)
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
            _pip(venv, str(source))
            (venv / MARKER).write_text(f"pip install . of pyproject.toml {key}\n")
        yield venv


def run_light(venv: Path, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """ARGV with the light venv's interpreter and console scripts, nothing of the shared venv or this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), *(p for p in env.get("PATH", "").split(os.pathsep)
                                                         if Path(p).resolve() != Path(sys.executable).parent.resolve())])
    if schemas_dir():
        env["AIRFLOW_GITOPS_SCHEMAS"] = str(schemas_dir())
    return subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_the_light_venv_has_no_airflow(light_venv):
    proc = run_light(light_venv, "python", "-c", "import airflow")
    assert proc.returncode == 1 and "No module named 'airflow'" in proc.stderr, proc.stderr


def test_the_light_venv_runs_the_installed_package_not_the_checkout(light_venv):
    proc = run_light(light_venv, "python", "-c", "import airflow_gitops; print(airflow_gitops.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert Path(proc.stdout.strip()).resolve().is_relative_to(light_venv.resolve()), proc.stdout


def test_validate_all_passes_without_airflow(light_venv):
    proc = run_light(light_venv, "airflow-gitops", "validate", "all")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Traceback" not in proc.stderr
    if "airflow=" in os.environ.get(CHARTS_ENV, ""):  # the Helm SDK renders the Airflow chart without Airflow too
        output = proc.stdout + proc.stderr
        assert not re.search(r"NOT RENDERED.*HelmRelease airflow/airflow:", output), output[-4000:]


def test_dev_says_to_install_the_dags_extra(light_venv):
    proc = run_light(light_venv, "airflow-gitops", "dev", "--port", "0")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert DAGS_HINT in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_bench_prints_render_and_validate_then_says_to_install_the_dags_extra(light_venv):
    proc = run_light(light_venv, "airflow-gitops", "bench", "--repeat", "1")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert re.search(r"^\s+render kind\s+\d", proc.stdout, re.M) and re.search(r"^\s+validate all\s+\d", proc.stdout, re.M)
    assert "DAG parse times NOT MEASURED: " in proc.stderr and DAGS_HINT in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
