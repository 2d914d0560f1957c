from __future__ import annotations

import pytest

from tests.hostile.harness import Workspace


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path)
