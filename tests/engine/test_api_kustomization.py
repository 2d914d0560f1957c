"""kustomize_controller/api.py: the Kustomization fields as kustomize-controller reads them (api/v1
kustomization_types.go): its defaults, and a wrongly typed field read as absent (the schema check reports it)."""

from __future__ import annotations

import pytest
from airflow_gitops.kustomize_controller.api import HealthCheck, HealthCheckExpr, Kustomization, kustomizations

from tests.helpers import flux_object

API = "kustomize.toolkit.fluxcd.io/v1"


def parse(spec, namespace: str | None = None) -> Kustomization:
    return Kustomization.parse(flux_object("Kustomization", API, spec, namespace))


def test_namespace_defaults_to_flux_system():
    assert (parse({}).namespace, parse({}, "apps").namespace) == ("flux-system", "apps")


def test_interval_is_required_so_an_absent_one_reads_none():
    assert (parse({"interval": "10m"}).interval, parse({}).interval) == ("10m", None)


def test_timeout_defaults_to_the_interval():
    assert parse({"interval": "10m"}).timeout == "10m"
    assert parse({"interval": "10m", "timeout": "2m"}).timeout == "2m"


def test_wait_and_prune_are_off_unless_true():
    assert (parse({}).wait, parse({}).prune) == (False, False)
    assert (parse({"wait": True, "prune": True}).wait, parse({"wait": True, "prune": True}).prune) == (True, True)


def test_health_checks_keep_their_field():
    ks = parse({"healthChecks": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "namespace": "a"},
                                 {"kind": "Cluster", "name": "db"}]})
    assert ks.health_checks == [HealthCheck("apps/v1", "Deployment", "web", "a", "spec.healthChecks[0]"),
                                HealthCheck("", "Cluster", "db", None, "spec.healthChecks[1]")]


def test_health_check_exprs_are_typed():
    ks = parse({"healthCheckExprs": [{"apiVersion": "postgresql.cnpg.io/v1", "kind": "Backup",
                                      "current": "status.phase == 'completed'", "failed": "status.phase == 'failed'"}]})
    assert ks.health_check_exprs == [HealthCheckExpr("postgresql.cnpg.io/v1", "Backup", "status.phase == 'completed'",
                                                     None, "status.phase == 'failed'", "spec.healthCheckExprs[0]")]


def test_target_namespace_components_and_decryption():
    ks = parse({"targetNamespace": "airflow", "components": ["../c"], "decryption": {"provider": "sops"}})
    assert (ks.target_namespace, ks.components, ks.decryption_provider) == ("airflow", ["../c"], "sops")


@pytest.mark.parametrize(("field", "value", "attribute", "absent"), [
    ("interval", 600, "interval", None),
    ("wait", "true", "wait", False),
    ("targetNamespace", ["airflow"], "target_namespace", None),
    ("components", "../c", "components", []),
    ("decryption", "sops", "decryption_provider", None),
    ("healthChecks", {"kind": "Deployment"}, "health_checks", []),
    ("healthCheckExprs", ["current"], "health_check_exprs", []),
])
def test_a_wrongly_typed_field_reads_as_absent(field, value, attribute, absent):
    assert getattr(parse({field: value}), attribute) == absent


def test_kustomizations_are_only_flux_kustomizations():
    flux = flux_object("Kustomization", API, {}, name="apps")
    kustomize = flux_object("Kustomization", "kustomize.config.k8s.io/v1beta1", {}, name="local")
    assert [ks.name for ks in kustomizations([kustomize, flux])] == ["apps"]
