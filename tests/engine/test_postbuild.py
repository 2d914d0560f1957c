"""kustomize-controller's post-build step piece by piece: the envsubst port against the upstream test table
(fluxcd/pkg envsubst v1.7.0 eval_test.go), go-yaml v2's typing of the substituted text, the exact findings when a
substitution fails, and commonMetadata. The golden cases substitution-types, substitution-errors and
common-metadata show the same through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow_gitops import yamltext
from airflow_gitops.kustomize_controller import envsubst, postbuild
from airflow_gitops.kustomize_controller.api import CommonMetadata, Kustomization
from airflow_gitops.model import Resource

# eval_test.go TestExpand, verbatim: (variables, input, output).
UPSTREAM_EXPAND = [
    ({}, "abcdEFGH28ij", "abcdEFGH28ij"),
    ({"var01": "abcdEFGH28ij"}, "${#var01}", "12"),
    ({"var01": "abcdEFGH28ij"}, "${var01^}", "AbcdEFGH28ij"),
    ({"var01": "abcdEFGH28ij"}, "${var01^^}", "ABCDEFGH28IJ"),
    ({"var01": "ABCDEFGH28IJ"}, "${var01,}", "aBCDEFGH28IJ"),
    ({"var01": "ABCDEFGH28IJ"}, "${var01,,}", "abcdefgh28ij"),
    ({"path_name": "/home/bozo/ideas/thoughts.for.today"}, "${path_name:11}", "ideas/thoughts.for.today"),
    ({"path_name": "/home/bozo/ideas/thoughts.for.today"}, "${path_name:11:5}", "ideas"),
    ({"var": "abc"}, "${var=xyz}", "abc"),
    ({}, "${var=xyz}", "xyz"),
    ({"default_var": "foo"}, "something ${var=${default_var}}", "something foo"),
    ({"default_var": "foo1"}, "foo: ${var=${default_var}-suffix}", "foo: foo1-suffix"),
    ({"default_var": "foo1"}, "foo: ${var=prefix${default_var}-suffix}", "foo: prefixfoo1-suffix"),
    ({}, "${var:=xyz}", "xyz"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/%abc/XYZ}", "abcABC123ABCXYZ"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/#abc/XYZ}", "XYZABC123ABCabc"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ//abc/xyz}", "xyzABC123ABCxyz"),
    ({"stringZ": "abcABC123ABCabc"}, "${stringZ/abc/xyz}", "xyzABC123ABCabc"),
    ({"filename": "bash.string.txt"}, "${filename#*.}", "string.txt"),
    ({"filename": "path/to/file"}, "${filename#*/}", "to/file"),
    ({"filename": "/path/to/file"}, "${filename#*/}", "path/to/file"),
    ({"filename": "bash.string.txt"}, "${filename##*.}", "txt"),
    ({"filename": "path/to/file"}, "${filename##*/}", "file"),
    ({"filename": "/path/to/file"}, "${filename##*/}", "file"),
    ({"filename": "bash.string.txt"}, "${filename%.*}", "bash.string"),
    ({"filename": "bash.string.txt"}, "${filename%%.*}", "bash"),
    ({"var01": "abcdEFGH28ij"}, "${var=${var01^^}}", "ABCDEFGH28IJ"),
    ({"var01": "abcdEFGH28ij"}, "$${var01}", "${var01}"),
    ({"var01": "abcdEFGH28ij"}, "some text ${var01}$${var$${var01}$var01${var01}",
     "some text abcdEFGH28ij${var${var01}$var01abcdEFGH28ij"),
    ({"default_var": "foo"}, "something $${var=${default_var}}", "something ${var=foo}"),
    ({"stringZ": "foo/bar"}, r"${stringZ/\//-}", "foo-bar"),
    ({"stringZ": "foo/bar/baz"}, r"${stringZ//\//-}", "foo-bar-baz"),
    ({"default_var": "foo"}, "\\\\something ${var=${default_var}}", "\\\\something foo"),
    ({"stringZ": "foo.bar"}, "${stringZ/./}", "foobar"),
]


@pytest.mark.parametrize(("variables", "text", "expected"), UPSTREAM_EXPAND, ids=[c[1] for c in UPSTREAM_EXPAND])
def test_envsubst_expands_as_upstream(variables, text, expected):
    assert envsubst.evaluate(text, variables).text == expected


@pytest.mark.parametrize("text", ["${#missing}", "${missing^^}", "${missing:0:10}", "${missing/a/b}",
                                  "${missing%%pattern}", "${set:=${missing}}"])
def test_a_transformation_of_a_missing_variable_is_missing_in_strict_mode(text):
    # eval_test.go TestExpandStrict; the arguments are evaluated before the variable is looked up.
    assert [m.name for m in envsubst.evaluate(text, {"set": "x"}).missing] == ["missing"]


@pytest.mark.parametrize("text", ["${missing:-fallback}", "${missing:=assigned}", "${missing=assigned}"])
def test_a_default_operator_tolerates_a_missing_variable(text):
    assert envsubst.evaluate(text, {}).missing == []


def test_only_braced_expressions_are_substituted():
    assert envsubst.evaluate("$HOME ${HOME} $(date)", {"HOME": "/root"}).text == "$HOME /root $(date)"


@pytest.mark.parametrize(("text", "error"), [
    ("${VAR-default}", envsubst.MISSING_CLOSING_BRACE),
    ("${open", envsubst.MISSING_CLOSING_BRACE),
    ("${}", envsubst.PARSE_VARIABLE_NAME),
    ("${var#}", envsubst.PARSE_FUNC_SUBSTITUTION),
])
def test_envsubst_parse_errors_carry_the_go_message_and_the_expression_offset(text, error):
    with pytest.raises(envsubst.EnvsubstError) as raised:
        envsubst.parse("prefix " + text)
    assert (raised.value.message, raised.value.offset) == (error, len("prefix "))


def test_variable_names_are_those_envsubst_reads():
    assert envsubst.variable_names("$$ ${a} $b ${c:=${d}} $${e} ${a}") == ["a", "c", "d"]
    assert envsubst.variable_names("${broken") == []


@pytest.mark.parametrize(("text", "value"), [
    ("3", 3), ("yes", True), ("y", True), ("Off", False), ("0x258", 600), ("012", 10), ("08", 8.0), ("1_000", 1000),
    ("1e3", 1000.0), ("1.30", 1.3), ("~", None), ("", None), ("2024-01-01", "2024-01-01"), ("1:30", "1:30"),
    ("v1.30", "v1.30"), ("99999999999999999999", 1e20), ("0o17", 15),
])
def test_plain_scalars_are_typed_as_go_yaml_v2_types_them(text, value):
    assert yamltext.resolve(text)[1] == value and type(yamltext.resolve(text)[1]) is type(value)


@pytest.mark.parametrize(("value", "go"), [(1e6, "1e+06"), (100000.0, "100000"), (1.5, "1.5"), (1e-05, "1e-05"),
                                           (0.0001, "0.0001"), (1.2345678e21, "1.2345678e+21")])
def test_floats_are_written_as_go_formats_them(value, go):
    assert yamltext.go_format_float(value) == go


def test_numbers_reach_the_api_server_as_encoding_json_writes_a_float64():
    obj = yamltext.from_yaml("a: 1.0\nb: 1000000\nc: 2.5\nd: 1e21\n")
    assert obj == {"a": 1, "b": 1000000, "c": 2.5, "d": 1e21}
    assert [type(obj[k]) for k in "abcd"] == [int, int, float, float]


def test_strings_that_would_read_as_another_type_are_quoted_in_the_text():
    text = yamltext.to_yaml({"a": "yes", "b": "3", "c": "2024-01-01", "d": "${v}", "e": "x\ny\n", "f": "1:30"})
    assert text == 'a: "yes"\nb: "3"\nc: "2024-01-01"\nd: ${v}\ne: |\n  x\n  y\nf: "1:30"\n'


def _configmap(**data):
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default"}, "data": data}


def test_a_value_lands_typed_where_its_text_lands():
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "w"},
                  "spec": {"replicas": "${n}", "paused": "${flag}", "template": {"metadata": {
                      "annotations": {"kept": "${q}${n}${q}"}}}}}
    result, problems = postbuild.substitute_object(deployment, {"n": "3", "flag": "on", "q": '"'})
    assert problems == []
    assert result["spec"]["replicas"] == 3 and result["spec"]["paused"] is True
    assert result["spec"]["template"]["metadata"]["annotations"]["kept"] == "3"


def test_a_values_file_in_a_configmap_stays_one_string():
    values = "dags:\n  gitSync:\n    repo: ${git_url}\n    branch: ${branch}\n"
    result, problems = postbuild.substitute_object(_configmap(**{"values.yaml": values}),
                                                   {"git_url": "https://example.com/r.git", "branch": "main"})
    assert problems == []
    assert result["data"]["values.yaml"] == "dags:\n  gitSync:\n    repo: https://example.com/r.git\n    branch: main\n"


def test_a_substitution_that_breaks_the_yaml_is_a_finding_on_its_field():
    objects, findings = postbuild.substitute(
        [_configmap(ok="${fine}", setting="${mapping_like}")], {"fine": "ok", "mapping_like": "key: value"},
        lambda obj: "apps/broken.yaml")
    assert [str(f) for f in findings] == [
        "apps/broken.yaml: ConfigMap default/x: data.setting: ${mapping_like} breaks the object once substituted "
        "(mapping values are not allowed in this context): kustomize-controller fails the whole Kustomization. "
        "Flux substitutes the YAML text, so a value that is YAML syntax (': ', '[', '{', quotes, ' #') needs "
        "quoting in the value"]
    assert objects[0]["data"] == {"ok": "${fine}", "setting": "${mapping_like}"}, "left as built"


def test_the_breaking_expression_is_found_inside_a_list():
    obj = {"kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "a", "args": ["${fine}", "${open_list}"]}]}}
    _, problems = postbuild.substitute_object(obj, {"fine": "x", "open_list": "[1"})
    assert [where for where, _ in problems] == ["spec.containers[0].args[1]"]


def test_a_value_json_cannot_hold_is_a_finding():
    _, problems = postbuild.substitute_object(_configmap(limit="${n}"), {"n": ".inf"})
    assert problems == [("data.limit", "${n} breaks the object once substituted (json: unsupported value: +Inf): "
                                       "kustomize-controller fails the whole Kustomization. Flux substitutes the "
                                       "YAML text, so a value that is YAML syntax (': ', '[', '{', quotes, ' #') "
                                       "needs quoting in the value")]


def test_an_expression_envsubst_cannot_parse_is_a_finding_on_its_field():
    _, problems = postbuild.substitute_object(_configmap(script="echo ${HOME-/root}"), {"v": "1"})
    assert problems == [("data.script", "${HOME-/root}: envsubst cannot parse it (missing closing brace); "
                                        "kustomize-controller fails the whole Kustomization (escape a literal "
                                        "dollar as $$)")]


def test_a_missing_variable_in_a_key_names_the_key():
    # Empty, the key leaves `: v` in the text, which is no YAML mapping: Flux would fail on that too.
    _, problems = postbuild.substitute_object(_configmap(**{"${k}": "v"}), {"v": "1"})
    assert [where for where, _ in problems] == ["data.${k}", "data.${k}"]
    assert problems[0][1].startswith("variable ${k} has no value")
    assert problems[1][1].startswith("${k} breaks the object once substituted (did not find expected key)")


def test_a_null_key_is_a_value_json_cannot_hold():
    with pytest.raises(yamltext.UnsupportedValue, match="unsupported map key of type: <nil>"):
        yamltext.from_yaml("~: v\n")


def _kustomization(spec):
    return Kustomization.parse(Resource({"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                                         "metadata": {"name": "k", "namespace": "flux-system"}, "spec": spec},
                                        "clusters/x/k.yaml", "root"))


def test_common_metadata_is_typed_on_the_kustomization():
    ks = _kustomization({"commonMetadata": {"labels": {"team": "a"}}})
    assert ks.common_metadata == CommonMetadata({"team": "a"}, {})
    assert _kustomization({}).common_metadata is None


def test_common_metadata_overrides_object_metadata_and_leaves_templates_alone():
    deployment = {"kind": "Deployment", "metadata": {"name": "w", "labels": {"tier": "web", "app": "w"}},
                  "spec": {"template": {"metadata": {"labels": {"app": "w"}}}}}
    plain = {"kind": "ConfigMap", "metadata": {"name": "c"}}
    postbuild.apply_common_metadata([deployment, plain], CommonMetadata({"tier": "shared"}, {}))
    assert deployment["metadata"]["labels"] == {"tier": "shared", "app": "w"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == {"app": "w"}
    assert plain["metadata"] == {"name": "c", "labels": {"tier": "shared"}}, "no empty annotations added"



def test_an_anchor_defined_twice_is_read_as_go_yaml_v2_reads_it():
    # libyaml refuses it ("found duplicate anchor"); go-yaml v2 takes the later one.
    assert yamltext.from_yaml("a: &x 1\nb: &x 2\nc: *x\n") == {"a": 1, "b": 2, "c": 2}


def test_a_merge_key_merges_and_a_merge_value_is_a_string():
    assert yamltext.from_yaml("base: &b {x: 1}\nm:\n  <<: *b\n  z: 2\nv: <<\n") == {
        "base": {"x": 1}, "m": {"x": 1, "z": 2}, "v": "<<"}
    assert yamltext.to_yaml({"v": "<<"}) == "v: <<\n"


def test_an_unknown_tag_leaves_the_value_as_written():
    assert yamltext.from_yaml("a: !tag 3\nb: !tag\n") == {"a": "3", "b": ""}


def test_a_kept_trailing_newline_is_written_without_a_document_end():
    assert yamltext.to_yaml({"k": "\n"}) == "k: |2+\n\n"


def test_a_float_beyond_int64_keeps_its_shortest_digits():
    assert yamltext.from_yaml("a: 100000010000001000000\n") == {"a": 100000010000001000000}


def test_a_substring_that_cuts_a_character_breaks_the_object():
    _, problems = postbuild.substitute_object(_configmap(v="${e:0:1}"), {"e": "é"})
    assert [where for where, _ in problems] == ["data.v"] and "invalid UTF-8" in problems[0][1]


ORACLE = [json.loads(line) for line in (Path(__file__).parent / "flux_postbuild_oracle.jsonl").read_text().splitlines()]


def _same(a, b) -> bool:
    """Equal, types included (3 is not 3.0, nor "3")."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.mark.parametrize("case", ORACLE, ids=[str(n) for n in range(len(ORACLE))])
def test_post_build_matches_flux_go_code(case):
    """flux_postbuild_oracle.md says where each answer comes from."""
    flux = case["flux"]
    assert yamltext.to_yaml(case["object"]) == flux["yaml"]
    result, problems = postbuild.substitute_object(case["object"], case["variables"])
    messages = [message for _, message in problems]
    error = flux.get("error", "")
    if not error:
        allowed = [] if case["strict"] else [m for m in messages if "has no value" in m]
        assert messages == allowed and _same(result, flux["out"])
    elif error.startswith("envsubst: variable not set (strict mode)"):
        name = error.rsplit(": ", 1)[1].strip('"')
        assert f"variable ${{{name}}} has no value" in " ".join(messages)
    elif error.startswith("envsubst: "):
        assert any(f"envsubst cannot parse it ({error.removeprefix('envsubst: ')})" in m for m in messages)
    else:
        assert error.startswith(("YAMLToJSON: ", "UnmarshalJSON: ", "json: "))
        assert any("breaks the object once substituted" in m for m in messages)
