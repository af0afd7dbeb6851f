"""OAuth resource-server mode: JWT access tokens checked against the issuer's public keys.

The SDK does the HTTP side (401 + `WWW-Authenticate`, 403 on a missing scope, the RFC 9728
protected-resource metadata route); this module only decides whether a token is good. Static bearer
tokens (`TL_MCP_AUTH_TOKENS`) keep working next to JWTs: either kind is accepted, and a static token
counts as holding every required scope. No token, claim value or key material is ever logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from cryptography.x509 import load_pem_x509_certificate
from mcp.server.auth.provider import AccessToken, TokenVerifier
from mcp.server.auth.settings import AuthSettings

from tl_mcp.config import ConfigError, Settings
from tl_mcp.server.principals import StaticTokens, principal_key

log = logging.getLogger(__name__)

RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGS = ("ES256", "ES384", "ES512")
#: Asymmetric only: with a public key, accepting HS* would let anyone sign with the key itself.
ALLOWED_ALGS = frozenset((*RSA_ALGS, *EC_ALGS, "EdDSA"))
#: Clock skew tolerated on exp/nbf/iat.
LEEWAY_S = 30.0


def _algorithms_for(key: object) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return EC_ALGS
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    return ()


class KeySource:
    """Where signing keys come from: one PEM key, or a JWKS document (file or URL)."""

    async def key_for(self, kid: str | None, alg: str) -> tuple[Any, tuple[str, ...]] | None:
        raise NotImplementedError


class PemKey(KeySource):
    def __init__(self, path: Path) -> None:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"TL_MCP_OAUTH_PUBLIC_KEY_FILE: cannot read {path} ({exc.strerror or exc}); "
                "point it at the issuer's PEM public key or certificate."
            ) from None
        try:
            key: Any = load_pem_public_key(data)
        except ValueError:
            try:
                key = load_pem_x509_certificate(data).public_key()
            except ValueError:
                raise ConfigError(
                    f"TL_MCP_OAUTH_PUBLIC_KEY_FILE: {path} is not a PEM public key or certificate."
                ) from None
        algs = _algorithms_for(key)
        if not algs:
            raise ConfigError(
                f"TL_MCP_OAUTH_PUBLIC_KEY_FILE: {path} holds a {type(key).__name__}; "
                "use an RSA, EC or Ed25519 key."
            )
        self._key, self._algs = key, algs

    async def key_for(self, kid: str | None, alg: str) -> tuple[Any, tuple[str, ...]] | None:
        return self._key, self._algs


class Jwks(KeySource):
    """A JWKS from a file (re-read when it changes) or a URL (cached; refetched on an unknown `kid`)."""

    def __init__(
        self,
        location: str,
        *,
        ttl_s: float = 300.0,
        min_refresh_s: float = 30.0,
        timeout_s: float = 5.0,
        transport: httpx2.AsyncBaseTransport | None = None,
    ) -> None:
        self._url = location if location.startswith(("https://", "http://")) else None
        self._path = None if self._url else Path(location).expanduser()
        self._ttl_s, self._min_refresh_s, self._timeout_s = ttl_s, min_refresh_s, timeout_s
        self._transport = transport
        self._keys: dict[str | None, tuple[Any, tuple[str, ...]]] = {}
        self._fetched_at = float("-inf")
        self._mtime: float | None = None
        self._lock = anyio.Lock()
        if self._path is not None:
            self._load_file()

    def _parse(self, raw: bytes, where: str) -> dict[str | None, tuple[Any, tuple[str, ...]]]:
        try:
            document = json.loads(raw)
            keys = document["keys"]
            if not isinstance(keys, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ConfigError(
                f"TL_MCP_OAUTH_JWKS: {where} is not a JWKS document (JSON with a keys list)."
            ) from None
        parsed: dict[str | None, tuple[Any, tuple[str, ...]]] = {}
        for entry in keys:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                jwk = jwt.PyJWK(entry)
            except jwt.PyJWTError:
                # One key of a type we cannot use (or an HMAC secret) must not hide the others.
                continue
            algs = _algorithms_for(jwk.key)
            if entry.get("alg"):
                algs = tuple(a for a in algs if a == entry["alg"])
            if algs:
                parsed[entry.get("kid")] = (jwk.key, algs)
        if not parsed:
            raise ConfigError(f"TL_MCP_OAUTH_JWKS: {where} holds no usable RSA, EC or Ed25519 signing key.")
        return parsed

    def _load_file(self) -> None:
        assert self._path is not None
        try:
            stat = self._path.stat()
            if stat.st_mtime == self._mtime:
                return
            self._keys = self._parse(self._path.read_bytes(), str(self._path))
        except OSError as exc:
            raise ConfigError(
                f"TL_MCP_OAUTH_JWKS: cannot read {self._path} ({exc.strerror or exc}); give a JWKS file "
                "or the issuer's https JWKS URL."
            ) from None
        self._mtime = stat.st_mtime

    async def _fetch(self) -> None:
        assert self._url is not None
        self._fetched_at = time.monotonic()
        try:
            async with httpx2.AsyncClient(timeout=self._timeout_s, transport=self._transport) as http:
                response = await http.get(self._url, headers={"accept": "application/json"})
                response.raise_for_status()
            self._keys = self._parse(response.content, self._url)
        except (httpx2.HTTPError, ConfigError) as exc:
            # Keep the keys we had: a flaky JWKS endpoint must not lock everyone out.
            log.warning("could not refresh the JWKS from %s: %s", self._url, exc)

    async def key_for(self, kid: str | None, alg: str) -> tuple[Any, tuple[str, ...]] | None:
        if self._path is not None:
            try:
                self._load_file()
            except ConfigError as exc:
                log.warning("%s (keeping the keys loaded before)", exc)
        else:
            async with self._lock:
                age = time.monotonic() - self._fetched_at
                if age > self._ttl_s or (kid not in self._keys and age > self._min_refresh_s):
                    await self._fetch()
        found = self._keys.get(kid)
        if found is None and kid is None and len(self._keys) == 1:
            found = next(iter(self._keys.values()))
        return found


class JwtVerifier:
    """Checks signature, `iss`, `aud` (or the resource URL), expiry and that `exp` is present."""

    def __init__(self, keys: KeySource, *, issuer: str, audiences: Sequence[str], resource_url: str) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audiences = list(audiences)
        self._resource_url = resource_url

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            log.info("rejected a bearer token: not a JWT")
            return None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ALLOWED_ALGS:
            log.info("rejected a JWT: algorithm %r is not accepted", str(alg)[:20])
            return None
        found = await self._keys.key_for(kid if isinstance(kid, str) else None, str(alg))
        if found is None:
            log.info("rejected a JWT: no signing key matches its kid")
            return None
        key, algs = found
        if alg not in algs:
            log.info("rejected a JWT: algorithm %s does not fit its key", alg)
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[str(alg)],
                audience=self._audiences,
                issuer=self._issuer,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            # pyjwt's messages name the failed check, never the token or claim values.
            log.info("rejected a JWT: %s", type(exc).__name__)
            return None
        return AccessToken(
            token=token,
            client_id=str(claims.get("client_id") or claims.get("azp") or claims.get("sub") or "unknown"),
            scopes=_scopes(claims),
            expires_at=int(claims["exp"]),
            # The audience check above is what ties the token to this server.
            resource=self._resource_url,
            subject=str(claims["sub"]) if "sub" in claims else None,
            claims={k: v for k, v in claims.items() if k in ("iss", "aud", "azp", "act", "iat")},
        )


def _scopes(claims: dict[str, Any]) -> list[str]:
    raw = claims.get("scope", claims.get("scp", ""))
    if isinstance(raw, str):
        return raw.split()
    if isinstance(raw, list):
        return [str(s) for s in raw]
    return []


class StaticOrJwt:
    """Static bearer tokens first (constant time, all compared), then the JWT check."""

    def __init__(self, tokens: StaticTokens, jwt_verifier: TokenVerifier) -> None:
        self._tokens = tokens
        self._jwt = jwt_verifier

    async def verify_token(self, token: str) -> AccessToken | None:
        return self._tokens.verify(token) or await self._jwt.verify_token(token)


def build_auth(
    settings: Settings, *, transport: httpx2.AsyncBaseTransport | None = None
) -> tuple[TokenVerifier, AuthSettings] | None:
    """The verifier and the SDK's auth settings, or None when OAuth is off; a half-done setup is an error."""
    if not settings.oauth_enabled:
        return None
    missing = [
        name
        for name, value in (
            ("TL_MCP_OAUTH_ISSUER (the authorization server's issuer URL)", settings.oauth_issuer),
            (
                "TL_MCP_OAUTH_RESOURCE_URL (this server's public /mcp URL)",
                settings.oauth_resource_url,
            ),
        )
        if not value
    ]
    if not settings.oauth_jwks and settings.oauth_public_key_file is None:
        missing.append("TL_MCP_OAUTH_JWKS or TL_MCP_OAUTH_PUBLIC_KEY_FILE (the keys tokens are signed with)")
    if missing:
        raise ConfigError(
            "OAuth is half configured: also set " + "; ".join(missing) + ". Or unset every TL_MCP_OAUTH_* "
            "setting to use static bearer tokens only."
        )
    if settings.oauth_jwks and settings.oauth_public_key_file is not None:
        raise ConfigError("Set only one of TL_MCP_OAUTH_JWKS and TL_MCP_OAUTH_PUBLIC_KEY_FILE, not both.")
    assert settings.oauth_issuer and settings.oauth_resource_url
    for name, url in (
        ("TL_MCP_OAUTH_ISSUER", settings.oauth_issuer),
        ("TL_MCP_OAUTH_RESOURCE_URL", settings.oauth_resource_url),
    ):
        if not url.startswith(("https://", "http://")):
            raise ConfigError(f"{name} must be an http(s) URL, got {url[:80]!r}.")
    keys: KeySource = (
        Jwks(settings.oauth_jwks, transport=transport)
        if settings.oauth_jwks
        else PemKey(settings.oauth_public_key_file)  # type: ignore[arg-type]
    )
    resource = settings.oauth_resource_url
    audiences = list(settings.oauth_audience) or sorted(
        {resource, resource.rstrip("/"), resource.rstrip("/") + "/"}
    )
    verifier: TokenVerifier = JwtVerifier(
        keys, issuer=settings.oauth_issuer, audiences=audiences, resource_url=resource
    )
    if settings.auth_tokens:
        tokens = StaticTokens(
            [t.get_secret_value() for t in settings.auth_tokens],
            principal_key(settings),
            scopes=settings.oauth_scopes,
            resource_url=resource,
        )
        verifier = StaticOrJwt(tokens, verifier)
    auth = AuthSettings.model_validate(
        {
            "issuer_url": settings.oauth_issuer,
            "resource_server_url": resource,
            "required_scopes": list(settings.oauth_scopes) or None,
            "validate_token_resource": True,
        }
    )
    return verifier, auth
