"""kustomize's and Helm's output read as Flux and Kubernetes read it (sigs.k8s.io/yaml over go-yaml v2, then
JSON), not as PyYAML reads it: the bounded loader's Kubernetes mode (source/bounds.py, yamltext.py)."""

from __future__ import annotations

import datetime

import pytest
import yaml
from airflow_gitops.source import bounds


def read(text: str):
    [document] = bounds.load_all(text, "output of test", kubernetes=True)
    return document


@pytest.mark.parametrize(("text", "value"), [
    ("2024-01-01", "2024-01-01"),  # PyYAML: a date, which no annotation or ConfigMap value may be
    ("2024-01-01T10:00:00Z", "2024-01-01T10:00:00Z"),
    ("1e3", 1000),  # PyYAML: the string "1e3"; a whole float is an integer once it is JSON
    ("2.5e-1", 0.25),
    ("1.0", 1),
    ("012", 10),
    ("0x1F", 31),
    ("yes", True),
    ("9223372036854775807", 9223372036854775807),  # an int64 stays exact
    ("1:30", "1:30"),  # PyYAML: the base-60 integer 90
])
def test_a_plain_scalar_is_typed_as_kubernetes_reads_it(text, value):
    assert read(f"v: {text}\n") == {"v": value}
    assert type(read(f"v: {text}\n")["v"]) is type(value)


def test_map_keys_become_strings():
    assert read("data:\n  2: a\n  true: b\n") == {"data": {"2": "a", "true": "b"}}


def test_a_quoted_value_stays_a_string():
    assert read("v: '2024-01-01'\nw: \"1e3\"\n") == {"v": "2024-01-01", "w": "1e3"}


def test_a_value_json_cannot_hold_is_a_yaml_error_naming_the_output():
    with pytest.raises(yaml.YAMLError, match=r"output of test: json: unsupported value: \+Inf"):
        read("v: .inf\n")


def test_the_bounds_still_hold_in_kubernetes_mode():
    with pytest.raises(bounds.DuplicateKeyError, match="mapping key 'a' already defined"):
        read("a: 1\na: 2\n")
    with pytest.raises(bounds.YamlBoundError, match="nesting deeper"):
        read("v: " + "[" * (bounds.MAX_DEPTH + 5) + "]" * (bounds.MAX_DEPTH + 5) + "\n")


def test_files_of_the_repository_keep_pyyamls_reading():
    # Git files are read for provenance and kustomization fields only; kustomize reads them itself.
    assert bounds.load_all("v: 2024-01-01\n", "file.yaml") == [{"v": datetime.date(2024, 1, 1)}]
