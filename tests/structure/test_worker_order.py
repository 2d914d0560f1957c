"""The order tests/conftest.py gives the collection for `make test`'s workers (pytest-xdist worksteal)."""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import LONG_TESTS, order_for_workers

DOWNGRADE = "tests/rollback/test_airflow_downgrade.py"
INSTALL = "tests/install/test_tool_without_airflow.py"


def items(*nodeids: str) -> list:
    return [SimpleNamespace(nodeid=nodeid) for nodeid in nodeids]


def test_each_worker_share_starts_with_its_long_tests_and_the_weights_are_balanced():
    collection = items(*(f"tests/a/test_short.py::test_{n}" for n in range(20)),
                       f"{DOWNGRADE}::test_step1_brings_the_database_back_and_the_old_release_starts",
                       f"{DOWNGRADE}::test_naive_revert_fails_as_on_the_cluster",
                       f"{INSTALL}::test_one", f"{INSTALL}::test_two")
    ordered = [item.nodeid for item in order_for_workers(collection, 2)]
    first, second = ordered[:12], ordered[12:]  # worksteal's first shares: 24 // 2 each
    assert sorted(ordered) == sorted(item.nodeid for item in collection)
    # The heaviest unit (the install module) opens the first share; the two downgrade tests, together about as
    # heavy, open the second.
    assert LONG_TESTS[INSTALL] > LONG_TESTS[f"{DOWNGRADE}::test_step1_brings_the_database_back_and_the_old_release_starts"]
    assert first[:2] == [f"{INSTALL}::test_one", f"{INSTALL}::test_two"]
    assert second[:2] == [f"{DOWNGRADE}::test_step1_brings_the_database_back_and_the_old_release_starts",
                          f"{DOWNGRADE}::test_naive_revert_fails_as_on_the_cluster"]


def test_a_module_listed_as_one_unit_stays_on_one_worker():
    collection = items(*(f"{INSTALL}::test_{n}" for n in range(5)), *(f"tests/a/test_s.py::t{n}" for n in range(5)))
    ordered = [item.nodeid for item in order_for_workers(collection, 2)]
    assert ordered[:5] == [f"{INSTALL}::test_{n}" for n in range(5)]
