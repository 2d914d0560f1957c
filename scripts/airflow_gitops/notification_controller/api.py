"""The Flux notification fields the checks read (notification.toolkit.fluxcd.io/v1 Receiver), parsed once from
the object in Git, with its provenance (`resource`: file and applying Kustomization). A field of the wrong type
reads as absent here; the schema check reports it, naming the file, the object and the field."""

from __future__ import annotations

from dataclasses import dataclass

from airflow_gitops.model import Resource, mapping, string


@dataclass(frozen=True)
class Receiver:
    """A webhook receiver: notification-controller checks each call against the token in its Secret."""

    resource: Resource
    name: str
    namespace: str
    type: str | None
    # spec.secretRef.name: the Secret (in the Receiver's namespace) that holds the webhook token.
    secret_name: str | None

    @classmethod
    def parse(cls, resource: Resource) -> Receiver:
        spec = mapping(resource.obj.get("spec"))
        return cls(resource, resource.name, resource.namespace, string(spec.get("type")),
                   string(mapping(spec.get("secretRef")).get("name")))
