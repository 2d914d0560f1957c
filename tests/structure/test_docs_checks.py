"""docs/checks.md holds the list of checks as `airflow-gitops validate --list-checks` prints it, not a copy kept by
hand, and describes every check by its name. After adding or changing a check, rewrite the block:

    UPDATE_DOCS=1 .venv/bin/pytest tests/structure/test_docs_checks.py -q
"""

from __future__ import annotations

import os
import re

from airflow_gitops.checks.registry import CHECKS, describe
from airflow_gitops.policy_config import PolicyConfig
from airflow_gitops.settings import Settings

from tests.helpers import REPO

PAGE = REPO / "docs" / "checks.md"
BLOCK = re.compile(r"(<!-- BEGIN validate --list-checks -->\n```text\n)(.*?)(```\n<!-- END validate --list-checks -->)",
                   re.S)


def list_checks() -> str:
    """What `validate --list-checks` prints for this repository (commands/validate.py prints these lines)."""
    return "\n".join(describe(Settings(REPO), PolicyConfig.load(REPO))) + "\n"


def test_the_list_of_checks_is_what_validate_list_checks_prints():
    text = PAGE.read_text()
    match = BLOCK.search(text)
    assert match, f"{PAGE}: no block between <!-- BEGIN validate --list-checks --> and <!-- END ... -->"
    expected = list_checks()
    if os.environ.get("UPDATE_DOCS") and match.group(2) != expected:
        PAGE.write_text(text[:match.start(2)] + expected + text[match.end(2):])
        return
    assert match.group(2) == expected, "docs/checks.md differs from `validate --list-checks`: rewrite it with " \
                                       "UPDATE_DOCS=1 .venv/bin/pytest tests/structure/test_docs_checks.py"


def test_every_check_is_described_by_its_name_and_every_name_described_is_a_check():
    described = set(re.findall(r"^### (.+)$", PAGE.read_text(), re.M))
    names = {name for heading in described for name in re.findall(r"`([a-z-]+)`", heading)}
    registered = {check.name for check in CHECKS}
    assert sorted(registered - names) == [], "checks without a section in docs/checks.md"
    assert sorted(names - registered) == [], "sections of docs/checks.md that name no check"
