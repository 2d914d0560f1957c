"""Cached venvs of other Airflow releases, for tests that need two real Airflows side by side.

`python tests/rollback/airflow_venvs.py 3.2.2` creates (once) ~/.cache/airflow-gitops/venvs/airflow-3.2.2 and prints
its `airflow` executable. The shared project venv is Airflow 3.3.2 itself; no other release may go into it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

# Beside Airflow: the PostgreSQL drivers the chart's images carry, and the API-server pins Airflow 3.2.2 needs
# (newer fastapi/cadwyn releases break its import; the issue measured these).
EXTRA_PACKAGES = {"3.2.2": ["psycopg2-binary", "asyncpg", "fastapi==0.136.3", "cadwyn==7.0.0"]}
DEFAULT_EXTRAS = ["psycopg2-binary", "asyncpg"]
INSTALL_TIMEOUT = 900
MARKER = ".airflow-gitops-complete"
LOCKS = Path(__file__).resolve().parents[2] / ".ci" / "requirements"


def venvs_dir() -> Path:
    cache = os.environ.get("AIRFLOW_GITOPS_CACHE") or str(Path(os.environ.get("XDG_CACHE_HOME")
                                                                or Path.home() / ".cache") / "airflow-gitops")
    return Path(cache).expanduser() / "venvs"


def airflow_venv(version: str) -> Path:
    """The venv of apache-airflow==version, created on first use; a half-made one is made again."""
    target = venvs_dir() / f"airflow-{version}"
    if (target / MARKER).is_file():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # venvs are not relocatable, so it is built in place and marked complete only at the end.
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True, timeout=120)
    packages = [f"apache-airflow=={version}", *EXTRA_PACKAGES.get(version, DEFAULT_EXTRAS)]
    lock = LOCKS / f"airflow-{version}.txt"
    # In CI every package by version and sha256 (scripts/lock-requirements.sh writes the lock).
    requirements = ["--require-hashes", "-r", str(lock)] if os.environ.get("CI") == "true" and lock.is_file() \
        else packages
    subprocess.run([str(target / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", *requirements],
                   check=True, timeout=INSTALL_TIMEOUT)
    (target / MARKER).write_text(" ".join(packages) + "\n")
    return target


if __name__ == "__main__":
    print(airflow_venv(sys.argv[1]) / "bin" / "airflow")
