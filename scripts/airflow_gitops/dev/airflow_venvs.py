"""Cached venvs of Airflow releases as their official images carry them, for tests that need two real Airflows
side by side.

`python -m airflow_gitops.dev.airflow_venvs 3.2.2` creates (once) ~/.cache/airflow-gitops/venvs/airflow-3.2.2 and prints
its `airflow` executable. Each venv holds the release and the FAB provider its image carries
(`airflow_versions.IMAGE_FAB_PROVIDER`: the chart's auth manager is FAB's, and `db migrate`, `check-migrations` and
`fab-db` read FAB's own schema), so a test runs what the pod runs. The shared project venv is Airflow 3.3.2 without
FAB (the DAGs' dev loop); no other release may go into it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from pathlib import Path

from airflow_gitops.airflow_versions import IMAGE_FAB_PROVIDER

# Beside Airflow: the PostgreSQL drivers the chart's images carry, and the API-server pins Airflow 3.2.2 needs
# (newer fastapi/cadwyn releases break its import; the issue measured these).
EXTRA_PACKAGES = {"3.2.2": ["psycopg2-binary", "asyncpg", "fastapi==0.136.3", "cadwyn==7.0.0"]}
DEFAULT_EXTRAS = ["psycopg2-binary", "asyncpg"]
INSTALL_TIMEOUT = 900
MARKER = ".airflow-gitops-complete"
LOCKS = Path(__file__).resolve().parents[3] / ".ci" / "requirements"


def venvs_dir() -> Path:
    cache = os.environ.get("AIRFLOW_GITOPS_CACHE") or str(Path(os.environ.get("XDG_CACHE_HOME")
                                                                or Path.home() / ".cache") / "airflow-gitops")
    return Path(cache).expanduser() / "venvs"


def packages(version: str) -> list[str]:
    """What the venv of a release holds: the release, its image's FAB provider, drivers and pins."""
    fab = IMAGE_FAB_PROVIDER.get(version)
    return [f"apache-airflow=={version}", *([f"apache-airflow-providers-fab=={fab}"] if fab else []),
            *EXTRA_PACKAGES.get(version, DEFAULT_EXTRAS)]


def airflow_venv(version: str) -> Path:
    """The venv of apache-airflow==version, created on first use; one made for another package list, or half-made,
    is made again."""
    target = venvs_dir() / f"airflow-{version}"
    wanted = " ".join(packages(version)) + "\n"
    marker = target / MARKER
    if marker.is_file() and marker.read_text() == wanted:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # One maker at a time (`make test`'s workers, or two checkouts): the others wait, then find the venv made.
    with open(target.parent / f"airflow-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.is_file() and marker.read_text() == wanted):
            _build_venv(target, version, wanted)
    return target


def _build_venv(target: Path, version: str, wanted: str) -> None:
    shutil.rmtree(target, ignore_errors=True)
    # venvs are not relocatable, so it is built in place and marked complete only at the end.
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, timeout=120)
    lock = LOCKS / f"airflow-{version}.txt"
    # In CI every package by version and sha256 (scripts/lock-requirements.sh writes the lock from packages()).
    requirements = ["--require-hashes", "-r", str(lock)] if os.environ.get("CI") == "true" and lock.is_file() \
        else packages(version)
    # Nothing of this process's Python path leaks into the venv's resolver.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    subprocess.run([str(target / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *requirements],
                   check=True, timeout=INSTALL_TIMEOUT, env=env)
    (target / MARKER).write_text(wanted)


if __name__ == "__main__":
    for release in sys.argv[1:]:
        print(airflow_venv(release) / "bin" / "airflow")
