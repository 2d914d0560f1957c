"""Build the Airflow 3 REST API requests that create an asset event on *another* Airflow instance.

Assets only trigger DAGs of the instance whose metadata DB records their events (the course's
"no cross-instance datasets" limit). Airflow 3's answer is the public REST API: another instance, or any
system, creates the event with ``POST /api/v2/assets/events`` and the consumers there run as if a
local task had updated the asset. Three requests:

1. ``POST /auth/token`` with ``{"username", "password"}`` -> ``{"access_token": <JWT>}`` (the simple
   and FAB auth managers both serve it);
2. ``GET /api/v2/assets?name_pattern=<name>`` -> the asset's numeric id on that instance (the event
   endpoint takes ``asset_id``, and ids differ between instances);
3. ``POST /api/v2/assets/events`` with ``{"asset_id": <id>, "extra": {...}}`` and
   ``Authorization: Bearer <JWT>``.

Pure functions over plain data (standard library only): the DAG task sends them through an HTTP
connection, the tests check them without any network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

TOKEN_PATH = "auth/token"
ASSETS_PATH = "api/v2/assets"
ASSET_EVENTS_PATH = "api/v2/assets/events"


@dataclasses.dataclass(frozen=True)
class ApiRequest:
    """One HTTP request: method, path relative to the API server's base URL, query, JSON body, headers."""

    method: str
    path: str
    params: Mapping[str, str] | None = None
    json: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def url(self, base_url: str) -> str:
        """The absolute URL under BASE_URL (which may carry a path prefix, e.g. http://host:8080/airflow)."""
        url = f"{base_url.rstrip('/')}/{self.path}"
        return f"{url}?{urlencode(self.params)}" if self.params else url


def _json_headers(token: str | None = None) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def token_request(username: str, password: str) -> ApiRequest:
    """Exchange a user's credentials for a JWT."""
    if not username or not password:
        raise ValueError("the connection to the remote Airflow needs a login and a password")
    return ApiRequest("POST", TOKEN_PATH, json={"username": username, "password": password}, headers=_json_headers())


def access_token(response_json: Mapping[str, Any]) -> str:
    """The JWT out of POST /auth/token's answer."""
    token = response_json.get("access_token")
    if not token:
        raise ValueError(f"no access_token in the token response: {sorted(response_json)}")
    return token


def asset_lookup_request(name: str, token: str) -> ApiRequest:
    """Find an asset by name (the API matches a pattern; asset_id_from_lookup keeps the exact name)."""
    return ApiRequest("GET", ASSETS_PATH, params={"name_pattern": name, "limit": "100"}, headers=_json_headers(token))


def asset_id_from_lookup(response_json: Mapping[str, Any], name: str) -> int:
    """The id of the asset called exactly NAME in GET /api/v2/assets' answer."""
    matches = [a["id"] for a in response_json.get("assets", []) if a.get("name") == name]
    if len(matches) != 1:
        raise LookupError(
            f"expected exactly one asset named {name!r} on the remote Airflow, found {len(matches)}: "
            "is a DAG there scheduled on it (assets exist once a parsed DAG references them)?"
        )
    return int(matches[0])


def asset_event_request(asset_id: int, extra: Mapping[str, Any], token: str) -> ApiRequest:
    """Create an asset event: consumers of the asset on the remote instance get triggered."""
    if isinstance(asset_id, bool) or not isinstance(asset_id, int):
        raise TypeError(f"asset_id must be the remote asset's integer id, not {asset_id!r}")
    return ApiRequest(
        "POST",
        ASSET_EVENTS_PATH,
        json={"asset_id": asset_id, "extra": dict(extra)},
        headers=_json_headers(token),
    )
