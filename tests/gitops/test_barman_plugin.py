"""The Barman Cloud plugin that runs, and the ObjectStore schema the repository is checked against.

Chart plugin-barman-cloud 0.6.0 deploys plugin v0.12.0 and installs that plugin's ObjectStore CRD; ../shared/schemas
holds v0.14's. Every ObjectStore in Git must be valid for the CRD the cluster really gets, and the schema the tool
fetches on a networked machine is that plugin's."""

from __future__ import annotations

import jsonschema
from airflow_gitops.checks import schemas

from tests.helpers import REPO, render, skip_for


def plugin_release():
    release = next(r for r in render("eks").releases if r.helmrelease.name == "plugin-barman-cloud")
    if release.unrendered_reason:
        skip_for("chart", f"plugin chart not rendered: {release.unrendered_reason}")
    return release


def test_every_objectstore_is_valid_for_the_crd_the_plugin_chart_installs():
    crd = next(o.obj for o in plugin_release().objects if o.kind == "CustomResourceDefinition"
               and o.name == "objectstores.barmancloud.cnpg.io")
    (version,) = [v for v in crd["spec"]["versions"] if v.get("served")]
    validator = jsonschema.Draft202012Validator(schemas._openapi_to_jsonschema(version["schema"]["openAPIV3Schema"]))
    stores = [r for r in render("eks").resources if r.kind == "ObjectStore"]
    assert stores and all(r.api_version == f"barmancloud.cnpg.io/{version['name']}" for r in stores)
    for store in stores:
        assert [e.message for e in validator.iter_errors(store.obj)] == [], store.ref


def test_the_helmrelease_comment_and_the_fetched_schema_name_the_plugin_that_runs():
    image = next(c["image"] for o in plugin_release().objects if o.kind == "Deployment"
                 for c in o.obj["spec"]["template"]["spec"]["containers"])
    tag = image.rsplit(":", 1)[1]
    assert image == f"ghcr.io/cloudnative-pg/plugin-barman-cloud:{tag}"
    assert f"/plugin-barman-cloud/{tag}/" in schemas.PINNED_SCHEMA_URLS[
        "cloudnative-pg-v1.30/barmancloud.cnpg.io_objectstores.yaml"]
    helmrelease = plugin_release().helmrelease
    assert f"Plugin {tag} " in (REPO / helmrelease.source_file).read_text()
