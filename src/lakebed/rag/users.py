"""Who asks: users and their access groups, from a TOML file.

The service has no login of its own: an organisation maps its identity provider's
groups to these names. A user that is not in the file is refused, never given a default.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

SHIPPED_USERS = Path(__file__).parent / "users.toml"


class UnknownUserError(LookupError):
    """No such user; the message lists the known ones."""


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    description: str = ""


def load_users(path: Path | None = None) -> dict[str, User]:
    path = path or SHIPPED_USERS
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read users: {exc}") from exc
    users = {}
    for name, entry in raw.get("users", {}).items():
        groups = entry.get("groups")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError(f"{path}: users.{name}.groups must be a list of strings")
        users[name] = User(name, tuple(groups), str(entry.get("description", "")))
    return users


def find_user(users: dict[str, User], name: str) -> User:
    if name not in users:
        known = ", ".join(sorted(users)) or "none"
        raise UnknownUserError(f"unknown user {name!r}; known users: {known}")
    return users[name]
