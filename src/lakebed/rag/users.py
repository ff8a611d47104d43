"""Who asks: users and their access groups, from a TOML file.

The service has no login of its own: an organisation maps its identity provider's
groups to these names. A user that is not in the file is refused, never given a default.

A user may carry ``token_sha256``, the sha256 of an API token. Once any user has one,
``POST /ask`` takes the asker from the ``Authorization: Bearer`` token and no longer
believes a name in the request body; without tokens the API trusts the name it is given
(a laptop, or behind a proxy that authenticates), which ``docs/rag.md`` says plainly.
"""

from __future__ import annotations

import hashlib
import hmac
import tomllib
from dataclasses import dataclass
from pathlib import Path

SHIPPED_USERS = Path(__file__).parent / "users.toml"


class UnknownUserError(LookupError):
    """No such user; the message lists the known ones."""


class NotAuthenticatedError(PermissionError):
    """Tokens are configured and the request's is missing or matches no user."""


@dataclass(frozen=True)
class User:
    name: str
    groups: tuple[str, ...]
    description: str = ""
    token_sha256: str | None = None


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
        token = entry.get("token_sha256")
        if token is not None and (not isinstance(token, str) or len(token) != 64):
            raise ValueError(f"{path}: users.{name}.token_sha256 must be 64 hex digits")
        users[name] = User(name, tuple(groups), str(entry.get("description", "")), token)
    return users


def authenticate(users: dict[str, User], token: str | None, claimed: str | None) -> User:
    """The user a request speaks for, or an error that names nobody.

    With tokens configured the token decides; a name in the body must then agree with it.
    The messages never list users: an anonymous caller must not learn whom to pretend to be.
    """
    if not any(u.token_sha256 for u in users.values()):
        if not claimed or claimed not in users:
            raise UnknownUserError("unknown user" if claimed else "user: Field required")
        return users[claimed]
    if not token:
        raise NotAuthenticatedError("an API token is required: Authorization: Bearer <token>")
    digest = hashlib.sha256(token.encode()).hexdigest()
    match = next(
        (
            u
            for u in users.values()
            if u.token_sha256 and hmac.compare_digest(u.token_sha256, digest)
        ),
        None,
    )
    if match is None:
        raise NotAuthenticatedError("the API token matches no user")
    if claimed and claimed != match.name:
        raise NotAuthenticatedError("the token does not belong to the user named in the request")
    return match


def find_user(users: dict[str, User], name: str) -> User:
    if name not in users:
        known = ", ".join(sorted(users)) or "none"
        raise UnknownUserError(f"unknown user {name!r}; known users: {known}")
    return users[name]
