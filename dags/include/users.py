"""The `users` table of user_processing: its DDL, the flattening of a randomuser.me payload and the insert.

Standard library only, so the DAG file that imports it stays cheap to parse and the functions can be
unit-tested without Airflow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Columns in table order; the course's row (firstname, lastname, country, username, password, email).
COLUMNS = ("email", "firstname", "lastname", "country", "username", "password")

# The email is the stable identity of a randomuser.me user, hence the primary key: a rerun that
# fetches the same user inserts nothing (ON CONFLICT DO NOTHING) instead of duplicating or failing.
# (The payload is fake data; the course stores the password column as is and so do we.)
CREATE_USERS_TABLE = """
CREATE TABLE IF NOT EXISTS users (
    email      TEXT PRIMARY KEY,
    firstname  TEXT NOT NULL,
    lastname   TEXT NOT NULL,
    country    TEXT NOT NULL,
    username   TEXT NOT NULL,
    password   TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
"""

INSERT_USER = (
    f"INSERT INTO users ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))}) ON CONFLICT (email) DO NOTHING"
)


def api_is_up(response: Any) -> bool:
    """HttpSensor response_check: the API answers with at least one user."""
    try:
        return bool(response.json().get("results"))
    except ValueError:
        return False


def flatten_user(payload: Mapping[str, Any]) -> dict[str, str]:
    """The first user of a randomuser.me response as one row of the `users` table.

    >>> flatten_user({"results": [{"name": {"first": "A", "last": "B"}, "location": {"country": "C"},
    ...     "login": {"username": "u", "password": "p"}, "email": "e@x"}]})["country"]
    'C'
    """
    results = payload.get("results") or []
    if not results:
        raise ValueError("the user API answered without any user in 'results'")
    user = results[0]
    return {
        "email": user["email"],
        "firstname": user["name"]["first"],
        "lastname": user["name"]["last"],
        "country": user["location"]["country"],
        "username": user["login"]["username"],
        "password": user["login"]["password"],
    }


def row_values(row: Mapping[str, str]) -> tuple[str, ...]:
    """The row's values in INSERT_USER's column order."""
    return tuple(row[column] for column in COLUMNS)
