"""Who is calling: one opaque id per authenticated principal, which jobs and Jockey sessions belong to.

Over stdio and unauthenticated HTTP there is one user, the local principal (""). A static bearer token
is known by a keyed hash of it, never by the token itself: the id ends up in the session file. An OAuth
token is known by its (client, issuer, subject), the identity the SDK already binds MCP sessions to,
hashed so that the session file holds no user names.

The hash key is stable on purpose, so that a restarted server (or another replica) gives a token the
same id and its remembered sessions stay its own. With `TL_MCP_STATE_KEYS` the key is derived from the
first state key, which an attacker holding only the session file does not have; without state keys it
is a fixed label, and the length of a static token is what keeps it from being guessed from its hash.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken, principal_components

from tl_mcp.config import Settings
from tl_mcp.server.tenants import TENANT_KEY, tenant_id

#: Stdio and HTTP without authentication: a single user owns everything.
LOCAL = ""
_LABEL = b"tl-mcp/principal/v1"


def principal_key(settings: Settings) -> bytes:
    if settings.state_keys:
        return hmac.new(settings.state_keys[0].get_secret_value().encode(), _LABEL, hashlib.sha256).digest()
    return _LABEL


class StaticTokens:
    """The configured bearer tokens; a match becomes an `AccessToken` that names its principal, not itself.

    Every token is compared in constant time and all of them are always compared, so neither the content
    nor the position of a token leaks through timing.
    """

    def __init__(
        self,
        tokens: Sequence[str],
        key: bytes,
        *,
        scopes: Sequence[str] = (),
        resource_url: str | None = None,
    ) -> None:
        if not tokens:
            raise ValueError("StaticTokens needs at least one token")
        self._tokens = [t.encode() for t in tokens]
        self._key = key
        self._scopes = list(scopes)
        self._resource_url = resource_url

    def verify(self, given: str) -> AccessToken | None:
        raw = given.strip().encode()
        matched: bytes | None = None
        for candidate in self._tokens:
            if hmac.compare_digest(raw, candidate):
                matched = candidate
        if matched is None:
            return None
        name = "static-" + hmac.new(self._key, matched, hashlib.sha256).hexdigest()[:32]
        # `token` holds the name too: an AccessToken may be logged or repr'd, the secret must not be.
        return AccessToken(token=name, client_id=name, scopes=self._scopes, resource=self._resource_url)


def principal_of(token: AccessToken | None) -> str:
    if token is None:
        return LOCAL
    identity = json.dumps(principal_components(token), separators=(",", ":"))
    return "p_" + hashlib.sha256(_LABEL + b"\0" + identity.encode()).hexdigest()[:32]


def current_principal() -> str:
    """The principal of the request being handled (set by the HTTP auth middleware; LOCAL otherwise),
    and with a tenant key (`tenants.py`) the key's hash too: the pair owns what the request makes."""
    base = principal_of(get_access_token())
    key = TENANT_KEY.get()
    return base if key is None else f"{base}/{tenant_id(key)}"
