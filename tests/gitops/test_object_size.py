"""The `object-size` check (checks/object_size.py): what the API server and etcd would refuse is a finding that
names the object, before Flux's apply of the whole Kustomization fails on it."""

from __future__ import annotations

import base64

from airflow_gitops.checks.object_size import MAX_CONFIG_DATA_BYTES, MAX_OBJECT_BYTES, object_sizes
from airflow_gitops.model import Resource


def resource(obj: dict) -> Resource:
    return Resource(obj, "apps/base/big.yaml", "Kustomization flux-system/apps")


def config_map(data: dict) -> Resource:
    return resource({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big", "namespace": "airflow"},
                     "data": data})


def test_a_config_map_just_under_1_mib_of_data_passes():
    assert object_sizes([config_map({"k": "x" * (MAX_CONFIG_DATA_BYTES - 1)})]) == []


def test_a_config_map_over_1_mib_of_data_is_refused_naming_the_object():
    [finding] = object_sizes([config_map({"k": "x" * MAX_CONFIG_DATA_BYTES})])
    assert (finding.file, finding.object, finding.field, finding.check) == (
        "apps/base/big.yaml", "ConfigMap airflow/big", "data", "object-size")
    assert "limit for a ConfigMap" in finding.message


def test_a_secret_counts_its_decoded_data_not_the_base64_text():
    decoded = MAX_CONFIG_DATA_BYTES - 1000  # its base64 text is a third longer, over the limit
    secret = resource({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "airflow"},
                       "data": {"k": base64.b64encode(b"x" * decoded).decode()}})
    assert object_sizes([secret]) == []


def test_an_object_over_etcds_request_limit_is_refused():
    big = resource({"apiVersion": "v1", "kind": "List", "metadata": {"name": "l"},
                    "items": ["x" * 1000] * (MAX_OBJECT_BYTES // 1000 + 1)})
    [finding] = object_sizes([big])
    assert (finding.object, finding.field) == ("List l", "(root)")
    assert "etcd" in finding.message
