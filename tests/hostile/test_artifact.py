"""Issue 16, class 5, "what `diff` may read": the tool reads only what Flux's artifact holds (source/artifact.py, a port
of fluxcd/pkg sourceignore and artifact/storage). `.git/`, what `.sourceignore` and source-controller's default
exclusions leave out, and symlinks are not in the artifact: a kustomization field that names one is a `containment`
finding, and a folder without kustomization.yaml is built without them, as Flux builds it.

The first table replays upstream's own pattern tests; the second is the rule on a repository copy, each variant a
mutation that names a path Flux's artifact does not hold."""

from __future__ import annotations

import os
import textwrap

import pytest
from airflow_gitops.pipeline import render_cluster
from airflow_gitops.source.artifact import EXCLUDE, INCLUDE, NO_MATCH, Artifact, Pattern, go_match

from tests.helpers import edit, make_settings
from tests.hostile.harness import CANARY

RESULTS = {"NoMatch": NO_MATCH, "Exclude": EXCLUDE, "Include": INCLUDE}

# Every case of fluxcd/pkg sourceignore/gitignore/pattern_test.go at e2cfd1a (a copy of go-git's), extracted as
# (Go test name, pattern, domain, path, isDir, expected MatchResult).
UPSTREAM_PATTERN_CASES = [('TestSimpleMatch_inclusion', '!vul?ano', (), ('value', 'vulkano', 'tail'), False, 'Include'),
 ('TestMatch_domainLonger_mismatch', 'value', ('head', 'middle', 'tail'), ('head', 'middle'), False, 'NoMatch'),
 ('TestMatch_domainSameLength_mismatch',
  'value',
  ('head', 'middle', 'tail'),
  ('head', 'middle', 'tail'),
  False,
  'NoMatch'),
 ('TestMatch_domainMismatch_mismatch',
  'value',
  ('head', 'middle', 'tail'),
  ('head', 'middle', '_tail_', 'value'),
  False,
  'NoMatch'),
 ('TestSimpleMatch_withDomain',
  'middle/',
  ('value', 'volcano'),
  ('value', 'volcano', 'middle', 'tail'),
  False,
  'Exclude'),
 ('TestSimpleMatch_onlyMatchInDomain_mismatch',
  'volcano/',
  ('value', 'volcano'),
  ('value', 'volcano', 'tail'),
  True,
  'NoMatch'),
 ('TestSimpleMatch_atStart', 'value', (), ('value', 'tail'), False, 'Exclude'),
 ('TestSimpleMatch_inTheMiddle', 'value', (), ('head', 'value', 'tail'), False, 'Exclude'),
 ('TestSimpleMatch_atEnd', 'value', (), ('head', 'value'), False, 'Exclude'),
 ('TestSimpleMatch_atStart_dirWanted', 'value/', (), ('value', 'tail'), False, 'Exclude'),
 ('TestSimpleMatch_inTheMiddle_dirWanted', 'value/', (), ('head', 'value', 'tail'), False, 'Exclude'),
 ('TestSimpleMatch_atEnd_dirWanted', 'value/', (), ('head', 'value'), True, 'Exclude'),
 ('TestSimpleMatch_atEnd_dirWanted_notADir_mismatch', 'value/', (), ('head', 'value'), False, 'NoMatch'),
 ('TestSimpleMatch_mismatch', 'value', (), ('head', 'val', 'tail'), False, 'NoMatch'),
 ('TestSimpleMatch_valueLonger_mismatch', 'val', (), ('head', 'value', 'tail'), False, 'NoMatch'),
 ('TestSimpleMatch_withAsterisk', 'v*o', (), ('value', 'vulkano', 'tail'), False, 'Exclude'),
 ('TestSimpleMatch_withQuestionMark', 'vul?ano', (), ('value', 'vulkano', 'tail'), False, 'Exclude'),
 ('TestSimpleMatch_magicChars', 'v[ou]l[kc]ano', (), ('value', 'volcano'), False, 'Exclude'),
 ('TestSimpleMatch_wrongPattern_mismatch', 'v[ou]l[', (), ('value', 'vol['), False, 'NoMatch'),
 ('TestGlobMatch_fromRootWithSlash', '/value/vul?ano', (), ('value', 'vulkano', 'tail'), False, 'Exclude'),
 ('TestGlobMatch_withDomain',
  'middle/tail/',
  ('value', 'volcano'),
  ('value', 'volcano', 'middle', 'tail'),
  True,
  'Exclude'),
 ('TestGlobMatch_onlyMatchInDomain_mismatch',
  'volcano/tail',
  ('value', 'volcano'),
  ('value', 'volcano', 'tail'),
  False,
  'NoMatch'),
 ('TestGlobMatch_fromRootWithoutSlash', 'value/vul?ano', (), ('value', 'vulkano', 'tail'), False, 'Exclude'),
 ('TestGlobMatch_fromRoot_mismatch', 'value/vulkano', (), ('value', 'volcano'), False, 'NoMatch'),
 ('TestGlobMatch_fromRoot_tooShort_mismatch', 'value/vul?ano', (), ('value',), False, 'NoMatch'),
 ('TestGlobMatch_fromRoot_notAtRoot_mismatch', '/value/volcano', (), ('value', 'value', 'volcano'), False, 'NoMatch'),
 ('TestGlobMatch_leadingAsterisks_atStart', '**/*lue/vol?ano', (), ('value', 'volcano', 'tail'), False, 'Exclude'),
 ('TestGlobMatch_leadingAsterisks_notAtStart',
  '**/*lue/vol?ano',
  (),
  ('head', 'value', 'volcano', 'tail'),
  False,
  'Exclude'),
 ('TestGlobMatch_leadingAsterisks_mismatch',
  '**/*lue/vol?ano',
  (),
  ('head', 'value', 'Volcano', 'tail'),
  False,
  'NoMatch'),
 ('TestGlobMatch_leadingAsterisks_isDir',
  '**/*lue/vol?ano/',
  (),
  ('head', 'value', 'volcano', 'tail'),
  False,
  'Exclude'),
 ('TestGlobMatch_leadingAsterisks_isDirAtEnd', '**/*lue/vol?ano/', (), ('head', 'value', 'volcano'), True, 'Exclude'),
 ('TestGlobMatch_leadingAsterisks_isDir_mismatch',
  '**/*lue/vol?ano/',
  (),
  ('head', 'value', 'Colcano'),
  True,
  'NoMatch'),
 ('TestGlobMatch_leadingAsterisks_isDirNoDirAtEnd_mismatch',
  '**/*lue/vol?ano/',
  (),
  ('head', 'value', 'volcano'),
  False,
  'NoMatch'),
 ('TestGlobMatch_tailingAsterisks',
  '/*lue/vol?ano/**',
  (),
  ('value', 'volcano', 'tail', 'moretail'),
  False,
  'Exclude'),
 ('TestGlobMatch_tailingAsterisks_exactMatch', '/*lue/vol?ano/**', (), ('value', 'volcano'), False, 'Exclude'),
 ('TestGlobMatch_middleAsterisks_emptyMatch', '/*lue/**/vol?ano', (), ('value', 'volcano'), False, 'Exclude'),
 ('TestGlobMatch_middleAsterisks_oneMatch', '/*lue/**/vol?ano', (), ('value', 'middle', 'volcano'), False, 'Exclude'),
 ('TestGlobMatch_middleAsterisks_multiMatch',
  '/*lue/**/vol?ano',
  (),
  ('value', 'middle1', 'middle2', 'volcano'),
  False,
  'Exclude'),
 ('TestGlobMatch_middleAsterisks_isDir_trailing',
  '/*lue/**/vol?ano/',
  (),
  ('value', 'middle1', 'middle2', 'volcano'),
  True,
  'Exclude'),
 ('TestGlobMatch_middleAsterisks_isDir_trailing_mismatch',
  '/*lue/**/vol?ano/',
  (),
  ('value', 'middle1', 'middle2', 'volcano'),
  False,
  'NoMatch'),
 ('TestGlobMatch_middleAsterisks_isDir',
  '/*lue/**/vol?ano/',
  (),
  ('value', 'middle1', 'middle2', 'volcano', 'tail'),
  False,
  'Exclude'),
 ('TestGlobMatch_wrongDoubleAsterisk_mismatch',
  '/*lue/**foo/vol?ano',
  (),
  ('value', 'foo', 'volcano', 'tail'),
  False,
  'NoMatch'),
 ('TestGlobMatch_magicChars', '**/head/v[ou]l[kc]ano', (), ('value', 'head', 'volcano'), False, 'Exclude'),
 ('TestGlobMatch_wrongPattern_noTraversal_mismatch',
  '**/head/v[ou]l[',
  (),
  ('value', 'head', 'vol['),
  False,
  'NoMatch'),
 ('TestGlobMatch_wrongPattern_onTraversal_mismatch',
  '/value/**/v[ou]l[',
  (),
  ('value', 'head', 'vol['),
  False,
  'NoMatch'),
 ('TestGlobMatch_issue_923',
  '**/android/**/GeneratedPluginRegistrant.java',
  (),
  ('packages', 'flutter_tools', 'lib', 'src', 'android', 'gradle.dart'),
  False,
  'NoMatch')]


@pytest.mark.parametrize("name, pattern, domain, path, is_dir, expected", UPSTREAM_PATTERN_CASES,
                         ids=[case[0] for case in UPSTREAM_PATTERN_CASES])
def test_patterns_match_as_upstream_matches_them(name, pattern, domain, path, is_dir, expected):
    assert Pattern.parse(pattern, domain, "test").match(path, is_dir) == RESULTS[expected]


@pytest.mark.parametrize("pattern, name, matches", [
    # Go's path/filepath.Match, which the patterns use per path component.
    ("*.yaml", "a.yaml", True), ("*.yaml", "a.yml", False), ("a?c", "abc", True), ("a?c", "ac", False),
    ("[a-c]x", "bx", True), ("[^a-c]x", "bx", False), ("[^a-c]x", "dx", True), (r"\*", "*", True),
    (r"\*", "a", False), ("[]a]", "a", False), ("[", "[", False), ("a\\", "a", False), ("[a-]", "a", False),
    (r"[\]]", "]", True), ("*", ".git", True), ("[!a]", "b", False), ("[!a]", "!", True),
])
def test_go_filepath_match(pattern, name, matches):
    assert go_match(pattern, name) is matches


def test_default_exclusions_apply_only_without_any_pattern(tmp_path):
    """SourceIgnoreFilter: no pattern at all means the default matcher (VCS, extensions, CI, extras); any pattern
    means VCS and the patterns only."""
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "x.yaml").write_text("")
    (tmp_path / "logo.png").write_text("")
    defaults = Artifact(tmp_path)
    assert "ExcludeCI" not in (defaults.excluded(".github/x.yaml") or "")  # the reason names where it comes from
    assert defaults.excluded(".github/x.yaml") and defaults.excluded("logo.png")
    assert defaults.excluded("apps/.sops.yaml") and defaults.excluded(".gitignore")
    (tmp_path / ".sourceignore").write_text("# only this\nsecret.yaml\n")
    patterns = Artifact(tmp_path)
    assert patterns.excluded(".github/x.yaml") is None and patterns.excluded("logo.png") is None
    assert patterns.excluded("a/b/secret.yaml") == "ignored by 'secret.yaml' (.sourceignore)"
    assert patterns.excluded(".gitignore")


def test_patterns_are_scoped_to_their_folder_and_spec_ignore_comes_last(tmp_path):
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / ".sourceignore").write_text("*.yaml\n")
    (tmp_path / ".sourceignore").write_text("/top.yaml\n")
    artifact = Artifact(tmp_path, "!apps/keep.yaml\n", "gotk-sync.yaml spec.ignore")
    assert artifact.excluded("apps/x.yaml") == "ignored by '*.yaml' (apps/.sourceignore)"
    assert artifact.excluded("infra/x.yaml") is None
    assert artifact.excluded("top.yaml") and artifact.excluded("infra/top.yaml") is None
    assert artifact.excluded("apps/keep.yaml") is None


def test_git_metadata_is_never_in_the_artifact_even_if_included_again(tmp_path):
    (tmp_path / ".sourceignore").write_text("!.git/\n!.git/config\n")
    assert Artifact(tmp_path).excluded(".git/config") == "`.git/` is never in Flux's artifact"


KIND_CONFIGS = "infrastructure/configs/kind"


def generator(files: str) -> str:
    return f"configMapGenerator:\n  - name: leak\n    files:\n      - {files}\n"


# (id, files to write, .sourceignore text or None, kustomization addition (`+path`: a first resource), the field
# named, the reason shown)
VARIANTS = [
    ("git-config", {}, None, generator("../../../.git/config"), "configMapGenerator[0].files[0]",
     "`.git/` is never in Flux's artifact"),
    ("git-head-as-resource", {}, None, "+../../../.git/HEAD", "resources[0]", "`.git/`"),
    ("git-folder-as-resource", {}, None, "+../../../.git", "resources[0]", "`.git/`"),
    ("default-ci-exclusion", {".github/leak.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: leak}\n"},
     None, "+../../../.github/leak.yaml", "resources[0]", "ignored by '.github/'"),
    ("default-sops-exclusion", {"infrastructure/configs/kind/.sops.yaml": "creation_rules: []\n"}, None,
     generator(".sops.yaml"), "configMapGenerator[0].files[0]", "ignored by '\\*\\*/.sops.yaml'"),
    ("default-extension-exclusion", {"infrastructure/configs/kind/data.zip": "zip"}, None, generator("data.zip"),
     "configMapGenerator[0].files[0]", "ignored by '\\*.zip'"),
    ("sourceignore-root", {"infrastructure/configs/kind/leak.env": "A=b\n"}, "*.env\n",
     "configMapGenerator:\n  - name: leak\n    envs:\n      - leak.env\n", "configMapGenerator[0].envs[0]",
     "ignored by '\\*.env' \\(.sourceignore\\)"),
    ("sourceignore-in-folder", {"infrastructure/configs/kind/.sourceignore": "private/\n",
                                "infrastructure/configs/kind/private/leak.txt": "x\n"}, None,
     generator("private/leak.txt"), "configMapGenerator[0].files[0]",
     "ignored by 'private/' \\(infrastructure/configs/kind/.sourceignore\\)"),
    ("sourceignore-keeps-git-out", {}, "!.git/\n", generator("../../../.git/config"),
     "configMapGenerator[0].files[0]", "`.git/`"),
    ("symlink-inside", {"infrastructure/configs/kind/target.txt": "x\n"}, None, generator("link.txt"),
     "configMapGenerator[0].files[0]", "link.txt is a symlink"),
]


@pytest.mark.parametrize("files, ignore, addition, field, reason", [v[1:] for v in VARIANTS],
                         ids=[v[0] for v in VARIANTS])
def test_a_path_flux_s_artifact_does_not_hold_is_refused(repo_copy, files, ignore, addition, field, reason):
    import re

    (repo_copy / ".git").mkdir()
    (repo_copy / ".git" / "config").write_text(f"[remote]\n  token = {CANARY}\n")
    (repo_copy / ".git" / "HEAD").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {CANARY}}}\n")
    for path, text in files.items():
        (repo_copy / path).parent.mkdir(parents=True, exist_ok=True)
        (repo_copy / path).write_text(text)
    if ignore is not None:
        (repo_copy / ".sourceignore").write_text(ignore)
    if "link.txt" in addition:
        os.symlink("target.txt", repo_copy / KIND_CONFIGS / "link.txt")
    kustomization = repo_copy / KIND_CONFIGS / "kustomization.yaml"
    if addition.startswith("+"):  # a first entry of `resources`
        edit(repo_copy, f"{KIND_CONFIGS}/kustomization.yaml", "resources:\n", f"resources:\n  - {addition[1:]}\n")
    else:
        kustomization.write_text(kustomization.read_text() + addition)
    state = render_cluster(make_settings(repo_copy), "kind", charts=False)
    found = [str(f) for f in state.findings if f.check == "containment"]
    pattern = rf"^{KIND_CONFIGS}/kustomization.yaml: Kustomization flux-system/infra-configs: {re.escape(field)}: " \
              rf".* is not in Flux's artifact \(.*{reason}"
    assert [line for line in found if re.search(pattern, line)], found
    assert CANARY not in str([r.obj for r in state.resources])


def test_a_generated_kustomization_leaves_out_what_the_artifact_does_not_hold(repo_copy):
    """A path without kustomization.yaml: Flux lists the YAML files its artifact holds, so an ignored one is simply not
    applied (no finding), and the tool does not read it either."""
    folder = repo_copy / "infrastructure/configs/kind"
    (folder / "kustomization.yaml").unlink()
    (folder / "kept.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: kept, namespace: airflow}\n")
    (folder / "ignored.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {CANARY}}}\n")
    (folder / ".sourceignore").write_text("ignored.yaml\n")
    state = render_cluster(make_settings(repo_copy), "kind", charts=False)
    names = {r.name for r in state.resources}
    assert "kept" in names and CANARY not in names
    edit(repo_copy, "infrastructure/configs/kind/.sourceignore", "ignored.yaml\n", "# nothing\n")
    assert CANARY in {r.name for r in render_cluster(make_settings(repo_copy), "kind", charts=False).resources}


def test_the_repository_reads_only_its_artifact():
    from tests.helpers import REPO

    for cluster in ("kind", "eks"):
        state = render_cluster(make_settings(REPO), cluster, charts=False)
        assert [str(f) for f in state.findings if f.check == "containment"] == []


def test_a_kustomization_file_left_out_of_the_artifact_is_refused(repo_copy):
    (repo_copy / ".sourceignore").write_text(textwrap.dedent("""\
        # a kustomization Flux would not see
        infrastructure/configs/kind/kustomization.yaml
        """))
    state = render_cluster(make_settings(repo_copy), "kind", charts=False)
    assert [f for f in state.findings if f.check == "containment" and f.file.endswith("kind/kustomization.yaml")
            and "not in Flux's artifact" in f.message], state.findings


def test_diff_refuses_a_tree_that_names_git_metadata(ws):
    """The pull-request path end to end: `diff` on a working tree whose generator names .git/config exits 2, shows no
    diff, and nothing of .git/config reaches its output."""
    ws.git_commit()
    git_config = ws.repo / ".git" / "config"
    git_config.write_text(git_config.read_text() + f"[credential]\n  helper = store-{CANARY}\n")
    kustomization = ws.repo / KIND_CONFIGS / "kustomization.yaml"
    kustomization.write_text(kustomization.read_text() + generator("../../../.git/config"))
    outcome = ws.run("diff", "kind", "--base", "main")
    ws.assert_contained(outcome, 2, f"{KIND_CONFIGS}/kustomization.yaml", "configMapGenerator[0].files[0]",
                        "not in Flux's artifact", "no diff is shown")
