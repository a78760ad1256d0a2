"""API keys: HS256 JWTs scoped to the whole service (admin), a workspace, a peer or a session
(server/auth.py says what each may call). Signing, verifying and the rules of a usable scope
live here so that KeyService.CreateKey, the HTTP face's POST /v3/keys and `honcho-grpc keys`
issue the same keys by the same rules."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from honcho_grpc.errors import FieldViolation, InvalidArgument, failed_precondition, unauthenticated
from honcho_grpc.settings import WORKSPACE_ID as ID_RE  # the pattern every id shares
from honcho_grpc.settings import AuthSettings

ALGORITHM = "HS256"
MIN_SECRET_BYTES = 32
LEEWAY_SECONDS = 10
# Claim -> the request field that carries it (KeyService.CreateKey and POST /v3/keys agree).
FIELDS = {"workspace": "workspace_id", "peer": "peer_id", "session": "session_id",
          "admin": "admin"}


class AuthConfigError(ValueError):
    """Auth is on but cannot work (no secret, or one too short)."""


# --- tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Claims:
    """What a verified token grants. Empty strings mean "not scoped by this"."""

    admin: bool = False
    workspace: str = ""
    peer: str = ""
    session: str = ""


def check_secret(secret: str) -> bytes:
    key = secret.encode()
    if len(key) < MIN_SECRET_BYTES:
        raise AuthConfigError(
            f"AUTH_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes when AUTH_USE_AUTH is "
            "true (generate one with `honcho-grpc keys secret`)")
    return key


def scope_problems(claims: Claims) -> list[tuple[str, str]]:
    """(claim, problem) pairs that make a scope unusable; empty when it is fine."""
    problems = []
    for name, value in (("workspace", claims.workspace), ("peer", claims.peer),
                        ("session", claims.session)):
        if value and not ID_RE.fullmatch(value):
            problems.append((name, "must be 1-512 characters of letters, digits, '_' or '-'"))
    if claims.admin and (claims.workspace or claims.peer or claims.session):
        problems.append(("admin", "an admin key takes no other scope"))
    if (claims.peer or claims.session) and not claims.workspace:
        problems.append(("workspace", "a peer or session key needs its workspace"))
    elif not claims.admin and not claims.workspace:  # said once: the line above covers it
        problems.append(("workspace", "a key is admin or names a workspace"))
    return problems


def mint_token(secret: str, claims: Claims, expires_at: datetime | None = None) -> str:
    """Sign a token for `claims` (checked with `scope_problems` first by the callers)."""
    now = int(time.time())
    payload: dict[str, Any] = {"iat": now, "jti": secrets.token_urlsafe(12)}
    if claims.admin:
        payload["ad"] = True
    for name, value in (("w", claims.workspace), ("p", claims.peer), ("s", claims.session)):
        if value:
            payload[name] = value
    if expires_at is not None:
        payload["exp"] = int(expires_at.astimezone(UTC).timestamp())
    return jwt.encode(payload, check_secret(secret), algorithm=ALGORITHM)


def verify_token(token: str, key: bytes) -> Claims:
    """The token's claims, or UNAUTHENTICATED (expired, forged, malformed, unusable)."""
    try:
        payload = jwt.decode(token, key, algorithms=[ALGORITHM], leeway=LEEWAY_SECONDS)
    except jwt.ExpiredSignatureError:
        raise unauthenticated("the token has expired", "TOKEN_EXPIRED") from None
    except Exception:  # InvalidTokenError, and odd claims PyJWT trips on (exp: Infinity)
        raise unauthenticated("the token is invalid", "TOKEN_INVALID") from None
    if not isinstance(payload, dict):
        raise unauthenticated("the token is invalid", "TOKEN_INVALID")
    admin = payload.get("ad", False)
    scope = {name: payload.get(name) or "" for name in ("w", "p", "s")}
    if not isinstance(admin, bool) or not all(isinstance(v, str) for v in scope.values()):
        raise unauthenticated("the token's claims are malformed", "TOKEN_INVALID")
    claims = Claims(admin=admin, workspace=scope["w"], peer=scope["p"], session=scope["s"])
    if scope_problems(claims):
        raise unauthenticated("the token's scope is malformed", "TOKEN_INVALID")
    return claims


def key_problems(claims: Claims, expires_at: datetime | None,
                 expiry_field: str) -> list[FieldViolation]:
    """Why a key for `claims`, expiring at `expires_at`, may not be issued (named after the
    request's fields); empty when it may."""
    problems = []
    if claims.peer and claims.session:
        problems.append(FieldViolation("session_id", "give peer_id or session_id, not both"))
    problems += [FieldViolation(FIELDS[claim], problem)
                 for claim, problem in scope_problems(claims)]
    if expires_at is not None:
        try:
            utc = expires_at.astimezone(UTC)
        except (OverflowError, ValueError):  # an offset that moves it past year 9999
            problems.append(FieldViolation(expiry_field, "is out of range"))
        else:
            if utc <= datetime.now(UTC):
                problems.append(FieldViolation(expiry_field, "must be in the future"))
    return problems


def issue(auth: AuthSettings, claims: Claims, expires_at: datetime | None = None,
          expiry_field: str = "expire_time") -> str:
    """A signed key, or FAILED_PRECONDITION (AUTH_DISABLED) with auth off — there is nothing
    to sign with or check — or INVALID_ARGUMENT naming each unusable field."""
    if not auth.use_auth:
        raise failed_precondition(
            "auth is off: keys can be issued only when the server runs with "
            "AUTH_USE_AUTH=true and AUTH_JWT_SECRET set", "AUTH_DISABLED")
    problems = key_problems(claims, expires_at, expiry_field)
    if problems:
        first = problems[0]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidArgument(message=f"{first.field}: {first.description}{more}",
                              violations=problems, metadata={"field": first.field})
    return mint_token(auth.jwt_secret.get_secret_value(), claims, expires_at)
