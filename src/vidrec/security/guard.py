"""The front door of the public API: authenticate, then rate-limit, one call per request.

HTTP (``vidrec.api.http_app``) and gRPC (``grpc_server``) both call
:meth:`Guard.admit` and only translate its outcome: :class:`~.auth.AuthError` → 401 /
UNAUTHENTICATED, :class:`RateLimited` → 429 + ``Retry-After`` / RESOURCE_EXHAUSTED. The rate
limit is per client: the API-key id or JWT ``sub`` when auth is on, else the peer address.
"""

from __future__ import annotations

from dataclasses import dataclass

from vidrec.config import ServingConfig
from vidrec.security.auth import ANONYMOUS, Authenticator, Principal
from vidrec.security.ratelimit import RateLimiter


class RateLimited(Exception):
    def __init__(self, retry_after_s: float, retry_after_header: str, rate: float) -> None:
        super().__init__(f"rate limit of {rate:g} requests/s exceeded; retry after "
                         f"{retry_after_header} s")  # fmt: skip
        self.retry_after_s = retry_after_s
        self.retry_after_header = retry_after_header


@dataclass
class Guard:
    auth: Authenticator
    limiter: RateLimiter

    @classmethod
    def from_config(cls, s: ServingConfig) -> Guard:
        """The configured guard; with ``require_auth`` and no credentials configured, a
        ValueError naming the variables to set (never a silently open API)."""
        auth = Authenticator(s.api_keys, s.jwt_secret, s.jwt_audience)
        if s.require_auth and not auth.enabled:
            raise ValueError(
                "serving.require_auth is set but no credentials are configured: set "
                "VIDREC_SERVING__API_KEYS and/or VIDREC_SERVING__JWT_SECRET (the chart's "
                "Secret keys api-keys / jwt-secret)"
            )
        return cls(auth, RateLimiter(s.rate_limit_per_s, s.rate_limit_burst))

    @classmethod
    def open(cls) -> Guard:
        """No auth, no limit (tests, local development)."""
        return cls(Authenticator(), RateLimiter(0))

    def admit(self, authorization: str | None, api_key: str | None, peer: str | None) -> Principal:
        """The caller, once authenticated and within its rate; raises AuthError/RateLimited."""
        principal = self.auth.authenticate(authorization, api_key)
        client = principal.client_id
        if principal is ANONYMOUS:
            client = f"addr:{peer or 'unknown'}"
        decision = self.limiter.check(client)
        if not decision.allowed:
            raise RateLimited(
                decision.retry_after_s, decision.retry_after_header, self.limiter.rate
            )
        return principal
