"""Airflow versions and their alembic migration heads, without importing Airflow.

A release's database has two schemas with their own alembic histories: Airflow's core (`alembic_version`) and the
FAB auth manager's (`alembic_version_fab`, the chart's auth manager). `airflow db migrate` and `db check-migrations`
cover both (the FAB provider registers its DB manager, airflow.utils.db_manager.RunDBManager); `airflow db downgrade`
moves the core only, and FAB's schema moves back only with `airflow fab-db downgrade`. So the schema of a release is
the pair (core head, head of the FAB provider its image carries).

The heads tables live in `airflow_migration_heads.py`, generated from Airflow's own maps
(`airflow.utils.db._REVISION_HEADS_MAP`, the map `airflow db downgrade --to-version` itself reads, and the FAB
provider's `airflow.providers.fab.auth_manager.models.db._REVISION_HEADS_MAP`) by
`python -m airflow_gitops.airflow_versions generate > scripts/airflow_gitops/airflow_migration_heads.py`
with the Airflow of pyproject.toml and its image's FAB provider installed (scripts/airflow_gitops/dev/airflow_venvs.py makes
that venv). `tests/rollback/test_migration_heads.py` compares them with every release venv, so they cannot go stale
unnoticed. Which FAB provider an image carries is `IMAGE_FAB_PROVIDER` below.
"""

from __future__ import annotations

import re
import sys

from airflow_gitops.airflow_migration_heads import (
    FAB_GENERATED_FROM,
    FAB_REVISION_HEADS,
    GENERATED_FROM,
    REVISION_HEADS,
)

# The FAB provider in the official image apache/airflow:<release>: the pin of that release's constraints file
# (constraints-<release>, from which the image is built), which is the newest FAB released before the release
# candidate the release was made from. Read from PyPI's release dates here (the constraints files are not
# reachable offline); FAB's schema head only moved in FAB 1.4.0 and 3.5.0 (FAB_REVISION_HEADS), so what matters is
# which side of 3.5.0 (2026-03-13) an image is: 3.1.8 (2026-03-11) is before it, 3.2.0 onwards after it.
# A release missing here has an unknown FAB schema: a rollback to or from it is refused until it is added.
IMAGE_FAB_PROVIDER = {
    "3.1.8": "3.4.0",
    "3.2.2": "3.6.4",
    "3.3.1": "3.8.0",
    "3.3.2": "3.8.1",
}

_VERSION = re.compile(r"^v?(\d+)\.(\d+)\.(\d+)")


def parse(version: str) -> tuple[int, int, int] | None:
    """`"3.3.2"` -> (3, 3, 2); pre-release and build suffixes are ignored; None when it is no version."""
    match = _VERSION.match(str(version).strip())
    if not match:
        return None
    major, minor, patch = (int(part) for part in match.groups())
    return major, minor, patch


def compare(a: str, b: str) -> int:
    """-1, 0 or 1 as a is lower than, equal to or higher than b; unparsable versions compare as strings."""
    left, right = parse(a), parse(b)
    if left is None or right is None:
        return (a > b) - (a < b)
    return (left > right) - (left < right)


def migration_head(version: str) -> str | None:
    """The alembic head a release ships, or None when unknown.

    Airflow's map lists only the releases that moved the head; a release carries the head of the newest listed
    release at or below it. Anything newer than the release the table came from may carry migrations nobody has
    seen yet, so it is unknown, and callers treat unknown as "differs".
    """
    wanted, newest = parse(version), parse(GENERATED_FROM)
    if wanted is None or newest is None or wanted > newest:
        return None
    listed = sorted((parsed, head) for v, head in REVISION_HEADS.items() if (parsed := parse(v)) is not None)
    below = [head for v, head in listed if v <= wanted]
    return below[-1] if below else None


def schema_version(version: str) -> str | None:
    """The release that introduced the core migration head `version` carries ("3.3.2" -> "3.3.0"): what the
    HelmRelease annotation airflow-gitops.io/schema-version holds, and the API server's schema guard compares. None
    when the head is unknown (a release newer than the table). The FAB schema is not in it: between releases whose
    core heads are equal it moves only with a FAB provider that the rollback tool also handles (heads_differ)."""
    head = migration_head(version)
    if head is None:
        return None
    listed = sorted((parsed, v) for v, h in REVISION_HEADS.items() if h == head and (parsed := parse(v)) is not None)
    return listed[0][1] if listed else None


def core_heads_differ(a: str, b: str) -> bool:
    """Whether moving between a and b moves Airflow's core schema: True unless both heads are known and equal."""
    head_a, head_b = migration_head(a), migration_head(b)
    return head_a is None or head_b is None or head_a != head_b


def fab_migration_head(airflow_version: str) -> str | None:
    """The FAB schema head of a release's image, or None when its FAB provider (or that provider's head) is unknown."""
    fab = IMAGE_FAB_PROVIDER.get(airflow_version)
    wanted, newest = parse(fab or ""), parse(FAB_GENERATED_FROM)
    if wanted is None or newest is None or wanted > newest:
        return None
    listed = sorted((parsed, head) for v, head in FAB_REVISION_HEADS.items() if (parsed := parse(v)) is not None)
    below = [head for v, head in listed if v <= wanted]
    return below[-1] if below else None


def fab_heads_differ(a: str, b: str) -> bool:
    """Whether moving between a and b moves the FAB auth manager's schema: True unless both are known and equal."""
    head_a, head_b = fab_migration_head(a), fab_migration_head(b)
    return head_a is None or head_b is None or head_a != head_b


def heads_differ(a: str, b: str) -> bool:
    """Whether moving between a and b moves the database schema, core or FAB: True unless all heads are known and
    equal."""
    return core_heads_differ(a, b) or fab_heads_differ(a, b)


def generate() -> str:
    """The table module's text, from the installed Airflow and FAB provider (the only function here that imports
    them)."""
    from importlib.metadata import version

    # The FAB provider is in the image (and the release venvs), not in the project venv.
    from airflow.providers.fab.auth_manager.models.db import (  # type: ignore[import-not-found]
        _REVISION_HEADS_MAP as _FAB_REVISION_HEADS_MAP,
    )
    from airflow.utils.db import _REVISION_HEADS_MAP

    lines = [
        '"""Airflow release -> alembic migration head. GENERATED by `python -m airflow_gitops.airflow_versions',
        'generate` from airflow.utils.db._REVISION_HEADS_MAP and the FAB provider\'s',
        'airflow.providers.fab.auth_manager.models.db._REVISION_HEADS_MAP; do not edit by hand."""',
        "",
        f'GENERATED_FROM = "{version("apache-airflow")}"',
        "",
        "REVISION_HEADS = {",
        *(f'    "{v}": "{head}",' for v, head in _REVISION_HEADS_MAP.items()),
        "}",
        "",
        f'FAB_GENERATED_FROM = "{version("apache-airflow-providers-fab")}"',
        "",
        "FAB_REVISION_HEADS = {",
        *(f'    "{v}": "{head}",' for v, head in _FAB_REVISION_HEADS_MAP.items()),
        "}",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["generate"]:
        sys.exit("usage: python -m airflow_gitops.airflow_versions generate")
    sys.stdout.write(generate())
