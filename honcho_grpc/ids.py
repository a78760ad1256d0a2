"""Server-generated ids: 21 characters of [A-Za-z0-9_-], like the caller-chosen ones."""

import secrets


def new_id() -> str:
    return secrets.token_urlsafe(16)[:21]
