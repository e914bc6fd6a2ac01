"""Who is calling: API keys and HS256 JWTs, from ``Authorization: Bearer <token>``.

Transports hand the raw header values to :meth:`Authenticator.authenticate` and map
:class:`AuthError` to HTTP 401 / gRPC UNAUTHENTICATED. API keys are compared in constant time
and never appear anywhere after this module: a key's client id is a short SHA-256 prefix
(``key:<12 hex>``). A JWT's client id is its ``sub``. With no keys and no JWT secret
configured, auth is off (local development) and every caller is ``anonymous``.

Authorisation per user is :meth:`Principal.may_act_for`: an end-user JWT reads feeds and writes
events only for its own ``sub``; API keys and JWTs with :data:`SERVICE_SCOPE` act for any user.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jwt

BEARER = "bearer"
JWT_ALGORITHMS = ("HS256",)
JWT_LEEWAY_S = 30  # clock skew tolerated on exp / nbf / iat
FORGET_SCOPE = "users:forget"  # a JWT scope that may erase any user (not only its own sub)
SERVICE_SCOPE = "recommendations:any-user"  # a JWT scope that reads feeds / writes events for
# any user: backend services that hold a JWT instead of an API key (a gateway, a batch job)


class AuthError(Exception):
    """Missing or invalid credentials; ``detail`` says what is wrong and what to do."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error = error  # "missing_credentials" | "invalid_credentials"
        self.detail = detail


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``client_id`` keys rate limits; it is never a secret."""

    client_id: str
    kind: str  # "api_key" | "jwt" | "anonymous"
    subject: str | None = None  # the JWT `sub`
    scopes: frozenset[str] = field(default_factory=frozenset)

    def _is_or_has(self, user_id: int, scope: str) -> bool:
        """Backend services (API keys), the user themself (JWT ``sub``) or a JWT holding
        ``scope``; with auth off, anyone (local development)."""
        if self.kind in ("api_key", "anonymous"):
            return True
        return self.subject == str(user_id) or scope in self.scopes

    def may_forget(self, user_id: int) -> bool:
        """Erasure: an API key, the user's own JWT, or a JWT with :data:`FORGET_SCOPE`."""
        return self._is_or_has(user_id, FORGET_SCOPE)

    def may_act_for(self, user_id: int | None) -> bool:
        """Whether this caller may read ``user_id``'s feeds (their explanations reveal the
        watch history) or write events as that user. ``None`` (an anonymous feed) is anyone's."""
        return user_id is None or self._is_or_has(user_id, SERVICE_SCOPE)

    def not_for(self, user_id: int) -> str:
        """Why :meth:`may_act_for` refused ``user_id``: the reason clients see (403)."""
        return (
            f"user_id {user_id} is not the token's subject ({self.subject}): an end-user JWT"
            f" acts only for its own user; services use an API key or scope {SERVICE_SCOPE}"
        )


ANONYMOUS = Principal("anonymous", "anonymous")


def key_id(key: str) -> str:
    """A stable, non-secret name for an API key (logs, rate-limit buckets)."""
    return "key:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(str(s) for s in raw)
    return frozenset()


class Authenticator:
    def __init__(
        self, api_keys: Sequence[str] = (), jwt_secret: str = "", jwt_audience: str = ""
    ) -> None:
        self._keys = [(k.encode(), key_id(k)) for k in api_keys if k]
        self._secret = jwt_secret
        self._audience = jwt_audience or None

    @property
    def enabled(self) -> bool:
        return bool(self._keys or self._secret)

    def describe(self) -> str:
        kinds = [k for k, on in (("an API key", self._keys), ("a JWT", self._secret)) if on]
        return " or ".join(kinds)

    def authenticate(self, authorization: str | None, api_key: str | None = None) -> Principal:
        """The caller behind ``Authorization`` (or ``X-API-Key``); raises :class:`AuthError`."""
        if not self.enabled:
            return ANONYMOUS
        token = self._token(authorization, api_key)
        if self._secret and token.count(".") == 2:
            return self._jwt(token)
        for key, name in self._keys:
            if hmac.compare_digest(key, token.encode()):
                return Principal(name, "api_key")
        raise AuthError(
            "invalid_credentials",
            f"the token is not a valid {self.describe()}; check the key or get a new token",
        )

    def _token(self, authorization: str | None, api_key: str | None) -> str:
        how = f"send `Authorization: Bearer <token>` with {self.describe()}"
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            if scheme.lower() != BEARER or not token.strip():
                raise AuthError(
                    "invalid_credentials", f"Authorization must be `Bearer <token>`; {how}"
                )
            return token.strip()
        if api_key:
            return api_key.strip()
        raise AuthError("missing_credentials", f"no credentials: {how}")

    def _jwt(self, token: str) -> Principal:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=list(JWT_ALGORITHMS),
                audience=self._audience,
                leeway=JWT_LEEWAY_S,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("invalid_credentials", "the JWT has expired; get a new token") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError("invalid_credentials", f"invalid JWT: {exc}") from None
        sub = str(claims["sub"])
        return Principal(f"sub:{sub}", "jwt", subject=sub, scopes=_scopes(claims))
