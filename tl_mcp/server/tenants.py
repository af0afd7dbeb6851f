"""Multi-tenant keys (`TL_MCP_TENANT_KEYS`, HTTP only, off by default): each request may bring its own
TwelveLabs API key in `X-TwelveLabs-Api-Key`, and then everything it does upstream uses that key.

- The key lives in a context variable for the length of the request (set by `CallGuard`), so jobs the
  request starts carry it on; nothing else holds it. Each key has its own connection pool
  (`UpstreamTransport`), and an answer that echoes a key is masked like the server's own.
- With tenant keys on, a request without the header never falls back to the server's key: its
  upstream requests are refused, saying to send it.
- The principal (`principals.current_principal`) of a request with a key is its token's principal and
  a hash of the key, so jobs and Jockey sessions belong to the pair: the same token with another key,
  or another token with the same key, is someone else.
"""

from __future__ import annotations

import hashlib
import re
from contextvars import ContextVar

from tl_mcp.api.errors import AuthenticationError

HEADER = "x-twelvelabs-api-key"
#: The request's tenant key, while its handlers (and the jobs they start) run.
TENANT_KEY: ContextVar[str | None] = ContextVar("tl_mcp_tenant_key", default=None)
_SHAPE = re.compile(r"[A-Za-z0-9_\-.:]{8,256}")
_LABEL = b"tl-mcp/tenant/v1\0"


class TenantKeyError(ValueError):
    """The header holds something that cannot be an API key (never echoed: it may be one)."""


def parse(raw: str | None) -> str | None:
    if raw is None:
        return None
    key = raw.strip()
    if not _SHAPE.fullmatch(key):
        raise TenantKeyError(
            "The X-TwelveLabs-Api-Key header does not hold an API key (8 to 256 letters, digits, "
            "'_', '-', '.' or ':'); send your TwelveLabs API key in it, or leave the header out."
        )
    return key


def tenant_id(key: str) -> str:
    """Names a key in principals and pool tables; the key itself is not recoverable from it."""
    return "t_" + hashlib.sha256(_LABEL + key.encode()).hexdigest()[:32]


def missing_key() -> AuthenticationError:
    return AuthenticationError(
        "This server runs with tenant keys (TL_MCP_TENANT_KEYS): every request must carry its own "
        "TwelveLabs API key in the X-TwelveLabs-Api-Key header, and none came with this one. Add the "
        "header to your MCP client's HTTP configuration and call again.",
        code="tenant_key_missing",
    )
