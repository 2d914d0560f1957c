"""`airflow-gitops render` against the real Flux CLI 2.9.5 (built from its Go module): for every Flux Kustomization
of both clusters, scripts/flux-build-compare.sh compares the tool's objects with
`flux build kustomization NAME --path PATH --kustomization-file FILE --dry-run`, after the normalisation written
down in scripts/airflow_gitops/operate/flux_build.py (objects sorted by kind, namespace and name, keys sorted, Flux's
output read with go-yaml v2's typing) and tested in tests/gitops/test_flux_build_compare.py.

No cluster is needed, only the flux binary. The negative tests change the *tool's* side with a wrapper marked as
such, since the real Flux's side cannot be made to disagree on purpose.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from airflow_gitops.live import tools
from airflow_gitops.operate import flux_build
from airflow_gitops.pipeline import render_cluster

from tests.helpers import CLUSTERS, REPO, make_settings, skip_for

pytestmark = pytest.mark.live

SCRIPT = REPO / "scripts" / "flux-build-compare.sh"

# A WRAPPER of the tool, for the negative tests only: it runs the real tool and then changes one line of what the
# tool says it builds, so that the comparison with the real Flux must fail.
ALTERED_TOOL = f"""#!/bin/sh
if [ "$3" = "$ALTER_REF" ] && [ "$4" = "--kustomization-file-out" ]; then
  {sys.executable} -m airflow_gitops "$@" | sed "$ALTER_SED"
else
  exec {sys.executable} -m airflow_gitops "$@"
fi
"""


@pytest.fixture(scope="module")
def flux_cli(live_tools):
    return tools.require_tool("flux")


def compare(flux_cli, *clusters: str, tool: str | None = None, extra_env: dict | None = None):
    env = {**os.environ, "FLUX": str(flux_cli), "PYTHONPATH": str(REPO / "scripts"), **(extra_env or {})}
    env["AIRFLOW_GITOPS"] = tool or f"{sys.executable} -m airflow_gitops"
    if tool is None:
        # The script runs "$GITOPS" as one word: a tiny launcher for this interpreter.
        env["AIRFLOW_GITOPS"] = str(REPO / ".venv" / "bin" / "airflow-gitops")
        if not os.access(env["AIRFLOW_GITOPS"], os.X_OK):
            skip_for("tool", "the tool's venv is missing: run make setup-tool")
    return subprocess.run(["bash", str(SCRIPT), *clusters], env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_every_kustomization_builds_as_the_flux_cli_builds_it(flux_cli, cluster):
    refs = [ks.ref for ks in flux_build.kustomizations(render_cluster(make_settings(), cluster, charts=False))]
    result = compare(flux_cli, cluster)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "flux version 2.9.5" in result.stdout
    for ref in refs:
        assert f"same: {cluster} {ref} " in result.stdout
    assert f"{len(refs)} Kustomization(s) compared; differences: 0; errors: 0" in result.stdout


def test_one_value_that_differs_from_flux_fails_with_a_diff_naming_the_object(flux_cli, tmp_path):
    tool = tmp_path / "airflow-gitops"
    tool.write_text(ALTERED_TOOL)
    tool.chmod(0o755)
    result = compare(flux_cli, "kind", tool=str(tool), extra_env={
        "ALTER_REF": "flux-system/apps", "ALTER_SED": "s/^\\(  *\\)branch: main$/\\1branch: other/"})
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "DIFFERENT: kind flux-system/apps (apps/kind)" in result.stdout
    assert re.search(r"^-\s+branch: other\n\+\s+branch: main$", result.stdout, re.M)
    assert "same: kind flux-system/infra-configs" in result.stdout


def test_a_failing_flux_build_is_an_error_not_a_pass(flux_cli, tmp_path):
    # The real flux refuses a Kustomization file that names no such path.
    tool = tmp_path / "airflow-gitops"
    tool.write_text(ALTERED_TOOL)
    tool.chmod(0o755)
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "flux").write_text(f"#!/bin/sh\nif [ \"$1\" = build ]; then shift 2; exec {flux_cli} build kustomization "
                                 f"\"$@\" --path /nonexistent-path; fi\nexec {flux_cli} \"$@\"\n")
    (broken / "flux").chmod(0o755)
    result = compare(broken / "flux", "kind", tool=str(tool), extra_env={"ALTER_REF": "-", "ALTER_SED": ""})
    assert result.returncode == 2, result.stdout[-3000:]
    assert "flux build failed" in result.stdout
