"""OAuth resource-server mode over real HTTP: JWTs checked by signature, issuer, audience, expiry, scope.

The app runs on a real loopback port; the JWKS comes from a file, or from a loopback HTTP server.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.server.conftest import loopback_socket, serve_app
from tl_mcp.cli import main
from tl_mcp.config import ConfigError, Settings
from tl_mcp.server import build_http_app, build_server
from tl_mcp.server.auth import Jwks, JwtVerifier, build_auth

pytestmark = pytest.mark.anyio

ISSUER = "https://auth.example.test"
SCOPE = "mcp:use"
STATIC = "static-" + "q" * 24
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


SIGNER, OTHER = _key(), _key()


def _jwks(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {"keys": [{**jwk, "kid": kid, "use": "sig", "alg": "RS256"}]}


def _token(audience: str, *, key: rsa.RSAPrivateKey = SIGNER, kid: str = "k1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": audience, "sub": "user-1", "exp": now + 300, "iat": now, "scope": SCOPE}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _settings(tmp: Path, port: int, **extra: str) -> Settings:
    env = {
        "TWELVELABS_API_KEY": "k-unused",
        "TL_MCP_BACKEND": "sandbox",
        # Nothing here calls the backend: tools/list and ping need no upstream.
        "TWELVELABS_BASE_URL": "http://127.0.0.1:9/v1.3",
        "TL_MCP_SANDBOX_DIR": str(tmp / "sandbox"),
        "TL_MCP_TRANSPORT": "http",
        "TL_MCP_OAUTH_ISSUER": ISSUER,
        "TL_MCP_OAUTH_RESOURCE_URL": f"http://127.0.0.1:{port}/mcp",
        "TL_MCP_OAUTH_SCOPES": SCOPE,
        **extra,
    }
    return Settings.from_sources(env=env)


async def test_jwt_and_static_tokens_over_http(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(_jwks(SIGNER, "k1")))
    sock = loopback_socket()
    port = sock.getsockname()[1]
    settings = _settings(tmp_path, port, TL_MCP_OAUTH_JWKS=str(jwks), TL_MCP_AUTH_TOKENS=STATIC)
    resource = f"http://127.0.0.1:{port}/mcp"
    good = _token(resource)
    rejected = {
        "bad signature": _token(resource, key=OTHER),
        "expired": _token(resource, exp=int(time.time()) - 120),
        "no expiry": _token(resource, exp=None),
        "wrong audience": _token("https://other.example/mcp"),
        "wrong issuer": _token(resource, iss="https://evil.example"),
        "unknown kid": _token(resource, kid="k9"),
        "HS256 with the public key": jwt.encode(
            {"iss": ISSUER, "aud": resource, "exp": int(time.time()) + 60},
            "x" * 32,
            algorithm="HS256",
        ),
        "not a JWT": "garbage",
    }
    app = build_http_app(build_server(settings), settings)
    async with serve_app(app, sock) as base, httpx2.AsyncClient(base_url=base) as http:
        assert (await http.get("/healthz")).status_code == 200

        meta = await http.get("/.well-known/oauth-protected-resource/mcp")
        assert meta.status_code == 200
        body = meta.json()
        assert body["resource"] == resource
        assert body["authorization_servers"] == [ISSUER] and body["scopes_supported"] == [SCOPE]

        missing = await http.post("/mcp", json=PING, headers=HEADERS)
        assert missing.status_code == 401
        challenge = missing.headers["www-authenticate"]
        assert challenge.startswith("Bearer ") and "/.well-known/oauth-protected-resource/mcp" in challenge

        for why, token in rejected.items():
            r = await http.post("/mcp", json=PING, headers={**HEADERS, "authorization": f"Bearer {token}"})
            assert r.status_code == 401, why

        no_scope = _token(resource, scope="other:thing")
        r = await http.post("/mcp", json=PING, headers={**HEADERS, "authorization": f"Bearer {no_scope}"})
        assert r.status_code == 403 and "insufficient_scope" in r.headers["www-authenticate"]

        # A valid JWT and a static token both get a working MCP session.
        for token in (good, STATIC):
            client_http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
            transport = streamable_http_client(f"{base}/mcp", http_client=client_http)
            async with client_http, Client(transport) as c:
                names = {t.name for t in (await c.list_tools()).tools}
                assert "wait_for_task" in names
    logged = caplog.text
    for token in (good, STATIC, *rejected.values()):
        assert token not in logged
    assert "ExpiredSignatureError" in logged and "InvalidAudienceError" in logged


async def test_pem_public_key_mode(tmp_path: Path) -> None:
    pem = tmp_path / "issuer.pem"
    pem.write_bytes(
        SIGNER.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    sock = loopback_socket()
    port = sock.getsockname()[1]
    settings = _settings(
        tmp_path, port, TL_MCP_OAUTH_PUBLIC_KEY_FILE=str(pem), TL_MCP_OAUTH_AUDIENCE="api://tl-mcp"
    )
    app = build_http_app(build_server(settings), settings)
    async with serve_app(app, sock) as base, httpx2.AsyncClient(base_url=base) as http:
        ok = await http.post(
            "/mcp", json=PING, headers={**HEADERS, "authorization": f"Bearer {_token('api://tl-mcp')}"}
        )
        assert ok.status_code not in (401, 403)
        # With an explicit audience, the resource URL alone is not enough.
        other = _token(f"http://127.0.0.1:{port}/mcp")
        r = await http.post("/mcp", json=PING, headers={**HEADERS, "authorization": f"Bearer {other}"})
        assert r.status_code == 401
        # Static tokens are not configured here: only JWTs work.
        r = await http.post("/mcp", json=PING, headers={**HEADERS, "authorization": f"Bearer {STATIC}"})
        assert r.status_code == 401


async def test_jwks_url_is_cached_and_refetched_for_a_new_key(tmp_path: Path) -> None:
    served = {"doc": _jwks(SIGNER, "k1"), "hits": 0}

    async def jwks(_: Request) -> JSONResponse:
        served["hits"] = int(served["hits"]) + 1  # type: ignore[call-overload]
        return JSONResponse(served["doc"])

    sock = loopback_socket()
    async with serve_app(Starlette(routes=[Route("/jwks", jwks)]), sock) as base:
        keys = Jwks(f"{base}/jwks", ttl_s=300, min_refresh_s=0)
        verifier = JwtVerifier(keys, issuer=ISSUER, audiences=["aud-1"], resource_url="https://r.example/mcp")
        first = await verifier.verify_token(_token("aud-1"))
        assert first is not None and first.subject == "user-1" and first.scopes == [SCOPE]
        assert await verifier.verify_token(_token("aud-1")) is not None
        assert served["hits"] == 1, "the JWKS is cached"
        # The issuer rotates: a token with a new kid makes us fetch again.
        served["doc"] = _jwks(OTHER, "k2")
        assert await verifier.verify_token(_token("aud-1", key=OTHER, kid="k2")) is not None
        assert served["hits"] == 2
    # The JWKS server is gone: the keys fetched before still verify, nothing hangs.
    with anyio.fail_after(10):
        assert await verifier.verify_token(_token("aud-1", key=OTHER, kid="k2")) is not None


def test_half_configured_oauth_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = Settings.from_sources(env={"TL_MCP_OAUTH_ISSUER": ISSUER})
    with pytest.raises(ConfigError) as err:
        build_auth(settings)
    message = str(err.value)
    assert "TL_MCP_OAUTH_RESOURCE_URL" in message and "TL_MCP_OAUTH_JWKS" in message
    code = main(["serve", "--transport", "http", "--oauth-issuer", ISSUER, "--sandbox-dir", str(tmp_path)])
    assert code == 2 and "half configured" in capsys.readouterr().err
    both = Settings.from_sources(
        env={
            "TL_MCP_OAUTH_ISSUER": ISSUER,
            "TL_MCP_OAUTH_RESOURCE_URL": "https://mcp.example/mcp",
            "TL_MCP_OAUTH_JWKS": str(tmp_path / "jwks.json"),
            "TL_MCP_OAUTH_PUBLIC_KEY_FILE": str(tmp_path / "key.pem"),
        }
    )
    with pytest.raises(ConfigError, match="only one of"):
        build_auth(both)
    unreadable = Settings.from_sources(
        env={
            "TL_MCP_OAUTH_ISSUER": ISSUER,
            "TL_MCP_OAUTH_RESOURCE_URL": "https://mcp.example/mcp",
            "TL_MCP_OAUTH_JWKS": str(tmp_path / "missing.json"),
        }
    )
    with pytest.raises(ConfigError, match="cannot read"):
        build_auth(unreadable)
