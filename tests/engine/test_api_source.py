"""source/api.py and notification_controller/api.py: the Flux source and Receiver fields the checks read
(source-controller api/v1, notification-controller api/v1), their defaults, and a wrongly typed field read as
absent (the schema check reports it)."""

from __future__ import annotations

from airflow_gitops.notification_controller.api import Receiver
from airflow_gitops.source.api import (
    GitRepository,
    GitRepositoryRef,
    HelmChart,
    HelmRepository,
    OCIRepository,
    OCIRepositoryRef,
    parse_source,
    url_of,
)

from tests.helpers import flux_object

SOURCE = "source.toolkit.fluxcd.io/v1"


def test_git_repository_url_interval_and_ref():
    git = GitRepository.parse(flux_object("GitRepository", SOURCE, {
        "url": "https://github.com/o/r", "interval": "1m", "ref": {"tag": "v1.2.3"}}, "flux-system"))
    assert (git.url, git.interval, git.ref) == ("https://github.com/o/r", "1m",
                                                GitRepositoryRef(None, "v1.2.3", None, None, None))


def test_git_repository_without_ref_names_nothing_so_flux_checks_out_master():
    assert GitRepository.parse(flux_object("GitRepository", SOURCE, {})).ref == GitRepositoryRef(
        None, None, None, None, None)


def test_helm_repository_type_defaults_to_default():
    assert HelmRepository.parse(flux_object("HelmRepository", SOURCE, {"url": "https://x"})).type == "default"


def test_oci_repository_without_ref_names_nothing_so_flux_pulls_latest():
    oci = OCIRepository.parse(flux_object("OCIRepository", SOURCE, {"url": "oci://x/chart"}))
    assert (oci.url, oci.ref) == ("oci://x/chart", OCIRepositoryRef(None, None, None, None))


def test_oci_repository_ref_is_typed():
    oci = OCIRepository.parse(flux_object("OCIRepository", SOURCE, {"ref": {"semver": ">=1.0", "tag": "1.0.0"}}))
    assert oci.ref == OCIRepositoryRef(None, ">=1.0", None, "1.0.0")


def test_helm_chart_version_absent_reads_empty():
    chart = HelmChart.parse(flux_object("HelmChart", SOURCE, {"chart": "airflow", "sourceRef": {
        "kind": "HelmRepository", "name": "apache"}}))
    assert (chart.chart, chart.version, chart.source_kind, chart.source_name) == (
        "airflow", "", "HelmRepository", "apache")


def test_a_wrongly_typed_url_or_ref_reads_as_absent():
    git = GitRepository.parse(flux_object("GitRepository", SOURCE, {"url": 5, "interval": 60,
                                                                     "ref": {"commit": 123}}))
    assert (git.url, git.interval, git.ref.commit) == ("", None, None)


def test_parse_source_by_kind_and_the_url_of_each():
    repository = flux_object("HelmRepository", SOURCE, {"url": "https://charts"})
    bucket = flux_object("Bucket", SOURCE, {"endpoint": "s3.amazonaws.com"})
    assert url_of(parse_source(repository)) == "https://charts"
    assert parse_source(bucket) is None and url_of(None) == ""


def test_receiver_secret_name():
    receiver = Receiver.parse(flux_object("Receiver", "notification.toolkit.fluxcd.io/v1",
                                          {"type": "github", "secretRef": {"name": "webhook-token"}}, "flux-system"))
    assert (receiver.type, receiver.secret_name) == ("github", "webhook-token")


def test_a_wrongly_typed_receiver_secret_reads_as_absent():
    receiver = Receiver.parse(flux_object("Receiver", "notification.toolkit.fluxcd.io/v1", {"secretRef": "token"}))
    assert receiver.secret_name is None
