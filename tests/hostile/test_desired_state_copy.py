"""The copy of the desired state that the tests break and the local cluster serves (source/repository.py) keeps a
symbolic link a pull request adds as a link: it never reads the file the link points at while copying."""

from __future__ import annotations

import os

from airflow_gitops.source.repository import DESIRED_STATE, copy_desired_state


def test_a_link_out_of_the_repository_is_copied_as_a_link(tmp_path):
    repo = tmp_path / "repo"
    for part in DESIRED_STATE:
        (repo / part).mkdir(parents=True) if "." not in part else (repo / part).write_text("[project]\n")
    outside = tmp_path / "outside-secret"
    outside.write_text("do not copy me\n")
    os.symlink(outside, repo / "charts-values" / "leak.yaml")
    os.symlink(outside, repo / "dags" / "leak.py")

    copy = copy_desired_state(repo, tmp_path / "copy")

    for link in (copy / "charts-values" / "leak.yaml", copy / "dags" / "leak.py"):
        assert link.is_symlink() and os.readlink(link) == str(outside)
