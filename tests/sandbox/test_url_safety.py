"""Caller-supplied URLs: only http(s), and by default never a host resolving to the sandbox's own or a
private network, on every route that fetches one and on every redirect hop."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx2
import pytest

from tests.sandbox.conftest import MARENGO, client_for
from tl_mcp.sandbox import urls
from tl_mcp.sandbox.config import ALLOW_PRIVATE_URLS_ENV, Resolver, SandboxConfig
from tl_mcp.sandbox.embedded import EmbeddedSandbox

PUBLIC = "http://93.184.216.34"  # an IP literal: global, so no DNS is needed to accept it


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx2.Client]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(ALLOW_PRIVATE_URLS_ENV, raising=False)
        sb = EmbeddedSandbox.start_in_thread(tmp_path_factory.mktemp("strict"), analyzers="none")
    assert sb.config.allow_private_urls is False
    try:
        with client_for(sb) as client:
            r = client.post("/indexes", json={"index_name": "i", "models": MARENGO})
            assert r.status_code == 201, r.text
            client.headers["x-index-id"] = r.json()["_id"]
            yield client
    finally:
        sb.stop()


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:9/clip.mp4", "resolves to 127.0.0.1, a loopback address"),
        ("http://localhost:9/clip.mp4", "a loopback address"),
        ("http://[::1]:9/clip.mp4", "resolves to ::1, a loopback address"),
        ("http://10.1.2.3/clip.mp4", "a private address"),
        ("http://192.168.0.10/clip.mp4", "a private address"),
        ("http://169.254.169.254/latest/meta-data", "a link-local address"),
        ("http://224.0.0.1/clip.mp4", "a multicast address"),
        ("http://0.0.0.0/clip.mp4", "0.0.0.0"),
        ("http://[::ffff:127.0.0.1]/clip.mp4", "a loopback address"),
        ("http://100.64.0.1/clip.mp4", "a non-global address"),
    ],
)
def test_url_assets_refuse_private_hosts_and_say_how_to_allow(
    strict: httpx2.Client, url: str, why: str
) -> None:
    before = strict.get("/assets").json()["page_info"]["total_results"]
    r = strict.post("/assets", data={"method": "url", "url": url})
    assert r.status_code == 400, r.text
    body = r.json()
    assert body["code"] == "parameter_invalid"
    assert why in body["message"] and f"{ALLOW_PRIVATE_URLS_ENV}=1" in body["message"], body
    assert strict.get("/assets").json()["page_info"]["total_results"] == before


@pytest.mark.parametrize("url", ["ftp://example.com/a.mp4", "file:///etc/passwd", "gopher://x/1"])
def test_only_http_urls_are_fetched(strict: httpx2.Client, url: str) -> None:
    r = strict.post("/assets", data={"method": "url", "url": url})
    assert r.status_code == 400 and r.json()["code"] == "parameter_invalid"
    assert "http(s)" in r.json()["message"]


def _error(r: httpx2.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()
    return body.get("error", body)  # analyze tasks and embed-v2 nest their errors


def test_every_url_route_refuses_loopback(strict: httpx2.Client) -> None:
    bad = "http://127.0.0.1:9/media"
    index_id = strict.headers["x-index-id"]
    attempts = {
        "tasks": strict.post("/tasks", data={"index_id": index_id, "video_url": bad}),
        "analyze": strict.post("/analyze", json={"video": {"type": "url", "url": bad}, "prompt": "hi"}),
        "analyze task": strict.post(
            "/analyze/tasks", json={"video": {"type": "url", "url": bad}, "prompt": "hi"}
        ),
        "embed image": strict.post("/embed", data={"model_name": "marengo3.0", "image_url": bad}),
        "embed audio": strict.post("/embed", data={"model_name": "marengo3.0", "audio_url": bad}),
        "embed task": strict.post("/embed/tasks", data={"model_name": "marengo3.0", "video_url": bad}),
        "embed-v2 image": strict.post(
            "/embed-v2",
            json={"input_type": "image", "model_name": "marengo3.0", "image": {"media_source": {"url": bad}}},
        ),
        "embed-v2 task": strict.post(
            "/embed-v2/tasks",
            json={"input_type": "video", "model_name": "marengo3.0", "video": {"media_source": {"url": bad}}},
        ),
        "search": strict.post(
            "/search",
            data={
                "index_id": index_id,
                "query_media_type": "image",
                "query_media_url": bad,
                "search_options": "visual",
            },
        ),
    }
    for route, r in attempts.items():
        assert r.status_code == 400, (route, r.text)
        error = _error(r)
        assert error["code"] == "parameter_invalid", (route, error)
        assert "loopback" in error["message"] and ALLOW_PRIVATE_URLS_ENV in error["message"], (route, error)
    assert strict.get("/tasks").json()["data"] == []
    assert strict.get("/analyze/tasks").json()["data"] == []


def test_redirects_are_rechecked_and_capped() -> None:
    def origin(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/to-private":
            return httpx2.Response(302, headers={"location": "http://10.0.0.5/secret"})
        if request.url.path.startswith("/loop"):
            n = int(request.url.path.removeprefix("/loop") or 0)
            return httpx2.Response(302, headers={"location": f"{PUBLIC}/loop{n + 1}"})
        return httpx2.Response(200, content=b"ok")

    with urls.client(allow_private=False, timeout=5, transport=httpx2.MockTransport(origin)) as c:
        assert c.get(f"{PUBLIC}/fine").content == b"ok"
        with pytest.raises(urls.UrlRefused, match=r"10\.0\.0\.5, a private address"):
            c.get(f"{PUBLIC}/to-private")
        with pytest.raises(httpx2.TooManyRedirects):
            c.get(f"{PUBLIC}/loop")
    with urls.client(allow_private=True, timeout=5, transport=httpx2.MockTransport(origin)) as c:
        assert c.get(f"{PUBLIC}/to-private").content == b"ok"
        with pytest.raises(urls.UrlRefused, match="only http and https"):
            c.get("ftp://10.0.0.5/x")


@pytest.mark.anyio
async def test_async_client_rechecks_redirects_too() -> None:
    def origin(request: httpx2.Request) -> httpx2.Response:
        if request.url.host != "127.0.0.1":
            return httpx2.Response(307, headers={"location": "http://127.0.0.1/admin"})
        return httpx2.Response(200)

    async with urls.async_client(allow_private=False, timeout=5, transport=httpx2.MockTransport(origin)) as c:
        with pytest.raises(urls.UrlRefused, match="loopback"):
            await c.get(f"{PUBLIC}/image.png")


def test_opt_in_by_environment_or_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_PRIVATE_URLS_ENV, raising=False)
    assert SandboxConfig(data_dir=tmp_path).allow_private_urls is False
    monkeypatch.setenv(ALLOW_PRIVATE_URLS_ENV, "1")
    assert SandboxConfig(data_dir=tmp_path).allow_private_urls is True
    assert SandboxConfig.from_env(tmp_path).allow_private_urls is True
    # The embedded sandbox the MCP server starts builds its config the same way.
    assert EmbeddedSandbox.create(tmp_path / "e", analyzers="none").config.allow_private_urls is True
    assert SandboxConfig(data_dir=tmp_path, allow_private_urls=False).allow_private_urls is False
    monkeypatch.setenv(ALLOW_PRIVATE_URLS_ENV, "0")
    assert SandboxConfig(data_dir=tmp_path).allow_private_urls is False


# ----- DNS rebinding: the connection goes to the address that was vetted ------------------------------------
class _Origin(http.server.BaseHTTPRequestHandler):
    hosts: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        type(self).hosts.append(self.headers.get("host", ""))
        self.send_response(200)
        self.send_header("content-length", "6")
        self.end_headers()
        self.wfile.write(b"secret")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def origin() -> Iterator[tuple[int, list[str]]]:
    """A real HTTP server on loopback that records the Host header of every request it gets."""
    hosts: list[str] = []
    handler = type("Origin", (_Origin,), {"hosts": hosts})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def _rebinding(name: str) -> tuple[Resolver, list[str]]:
    """Answers ``name`` with a public address the first time and with loopback afterwards."""
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        assert host == name, host
        asked.append(host)
        return ["93.184.216.34"] if len(asked) == 1 else ["127.0.0.1"]

    return resolve, asked


def test_a_rebinding_answer_between_check_and_fetch_is_refused(origin: tuple[int, list[str]]) -> None:
    port, hits = origin
    resolve, asked = _rebinding("rebind.example")
    url = f"http://rebind.example:{port}/clip.mp4"
    urls.check_url(url, allow_private=False, resolver=resolve)  # the check sees the public answer
    with (
        urls.client(allow_private=False, timeout=5, resolver=resolve) as c,
        pytest.raises(urls.UrlRefused, match=r"resolves to 127\.0\.0\.1, a loopback address"),
    ):
        c.get(url)
    assert len(asked) == 2 and hits == []


def test_the_connection_is_pinned_to_the_resolved_address(origin: tuple[int, list[str]]) -> None:
    port, hits = origin
    # `.invalid` never resolves in real DNS: reaching the server proves the resolver's address was used.
    with urls.client(allow_private=True, timeout=5, resolver=lambda host, p: ["127.0.0.1"]) as c:
        r = c.get(f"http://pinned.invalid:{port}/x")
    assert r.content == b"secret" and hits == [f"pinned.invalid:{port}"]
    assert r.url == f"http://pinned.invalid:{port}/x"  # callers still see the name they asked for


def test_https_keeps_the_name_for_tls_and_host_and_redirects_are_resolved_again() -> None:
    seen: list[tuple[str, str, Any]] = []

    def upstream(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.url.host, request.headers["host"], request.extensions.get("sni_hostname")))
        if request.url.path == "/hop":
            return httpx2.Response(302, headers={"location": "https://inner.example/admin"})
        return httpx2.Response(200)

    answers = {"cdn.example": ["93.184.216.34", "2606:2800:220:1::1"], "inner.example": ["10.0.0.7"]}
    with urls.client(
        allow_private=False,
        timeout=5,
        transport=httpx2.MockTransport(upstream),
        resolver=lambda host, port: answers[host],
    ) as c:
        assert c.get("https://cdn.example/ok").status_code == 200
        with pytest.raises(urls.UrlRefused, match=r"'inner\.example' resolves to 10\.0\.0\.7, a private"):
            c.get("https://cdn.example/hop")
    assert seen == [("93.184.216.34", "cdn.example", "cdn.example")] * 2


@pytest.mark.anyio
async def test_async_client_pins_too(origin: tuple[int, list[str]]) -> None:
    port, hits = origin
    resolve, _ = _rebinding("rebind.example")
    await urls.acheck_url(f"http://rebind.example:{port}/i.png", allow_private=False, resolver=resolve)
    async with urls.async_client(allow_private=False, timeout=5, resolver=resolve) as c:
        with pytest.raises(urls.UrlRefused, match="loopback"):
            await c.get(f"http://rebind.example:{port}/i.png")
    async with urls.async_client(allow_private=True, timeout=5, resolver=lambda h, p: ["127.0.0.1"]) as c:
        assert (await c.get(f"http://pinned.invalid:{port}/i.png")).content == b"secret"
    assert hits == [f"pinned.invalid:{port}"]


def test_sandbox_routes_use_the_configured_resolver(
    tmp_path: Path, origin: tuple[int, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, hits = origin
    resolve, asked = _rebinding("rebind.example")
    monkeypatch.delenv(ALLOW_PRIVATE_URLS_ENV, raising=False)
    sb = EmbeddedSandbox.start_in_thread(tmp_path, analyzers="none", resolver=resolve)
    assert "resolver" not in repr(sb.config) and "resolver" not in sb.config.model_dump()
    try:
        with client_for(sb) as client:
            r = client.post(
                "/embed",
                data={"model_name": "marengo3.0", "image_url": f"http://rebind.example:{port}/i.png"},
            )
    finally:
        sb.stop()
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "parameter_invalid" and "loopback" in r.json()["message"], r.json()
    assert len(asked) == 2 and hits == []


def test_an_unresolvable_host_is_a_connect_error_once_private_urls_are_allowed() -> None:
    def nowhere(host: str, port: int) -> list[str]:
        raise socket.gaierror(-2, "Name or service not known")

    with (
        urls.client(allow_private=True, timeout=5, resolver=nowhere) as c,
        pytest.raises(httpx2.ConnectError),
    ):
        c.get("http://nowhere.invalid/x")
    with pytest.raises(urls.UrlRefused, match="does not resolve"):
        urls.check_url("http://nowhere.invalid/x", allow_private=False, resolver=nowhere)


@pytest.mark.parametrize(
    ("address", "embedded"),
    [
        ("2002:7f00:1::", "127.0.0.1"),  # 6to4
        ("2002:a00:1::1", "10.0.0.1"),
        ("64:ff9b::7f00:1", "127.0.0.1"),  # NAT64 well-known prefix
        ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
        ("::ffff:0:7f00:1", "127.0.0.1"),  # IPv4-translated
        ("::ffff:c0a8:1", "192.168.0.1"),  # IPv4-mapped
        ("::7f00:1", "127.0.0.1"),  # IPv4-compatible
        ("2001:0:4136:e378:8000:63bf:80ff:fffe", "127.0.0.1"),  # Teredo: client 127.0.0.1, obfuscated
        ("2001:0:a00:1:8000:63bf:a2b5:2bdd", "10.0.0.1"),  # Teredo: server 10.0.0.1
        ("2607:f8b0::5efe:7f00:1", "127.0.0.1"),  # ISATAP under a global prefix
        ("2607:f8b0::200:5efe:a9fe:a9fe", "169.254.169.254"),  # ISATAP, u bit set
        ("::200:5efe:a00:1", "10.0.0.1"),
        ("2002:5db8:d822::5efe:c0a8:1", "192.168.0.1"),  # ISATAP under a public 6to4 prefix
    ],
)
def test_ipv6_forms_embedding_a_refused_ipv4_address_are_refused_on_every_path(
    address: str, embedded: str
) -> None:
    hits: list[str] = []

    def origin(request: httpx2.Request) -> httpx2.Response:
        hits.append(str(request.url))
        return httpx2.Response(302, headers={"location": f"http://[{address}]/secret"})

    why = rf"resolves to {address}, an IPv6 form of {embedded}, a [\w-]+ address"
    with pytest.raises(urls.UrlRefused, match=why):  # the URL literally
        urls.check_url(f"http://[{address}]/x", allow_private=False)
    with pytest.raises(urls.UrlRefused, match=why):  # a DNS answer
        urls.check_url("http://six.example/x", allow_private=False, resolver=lambda h, p: [address])
    with (
        urls.client(allow_private=False, timeout=5, transport=httpx2.MockTransport(origin)) as c,
        pytest.raises(urls.UrlRefused, match=why),  # a redirect hop
    ):
        c.get(f"{PUBLIC}/hop")
    assert hits == [f"{PUBLIC}/hop"]


def test_local_use_nat64_is_refused_whatever_it_embeds() -> None:
    # RFC 8215 lets the operator choose where the IPv4 address sits, so it cannot be judged by one.
    with pytest.raises(urls.UrlRefused, match="a local-use NAT64 address"):
        urls.check_url("http://[64:ff9b:1::5db8:d822]/x", allow_private=False)


@pytest.mark.parametrize(
    "address",
    [
        "2002:5db8:d822::1",
        "64:ff9b::5db8:d822",
        "::ffff:93.184.216.34",
        "2606:4700:4700::1111",
        "2607:f8b0::5efe:5db8:d822",  # ISATAP, router 93.184.216.34
    ],
)
def test_ipv6_forms_of_a_public_ipv4_address_stay_fetchable(address: str) -> None:
    # A DNS64 resolver on an IPv6-only network answers public names with 64:ff9b:: addresses.
    urls.check_url(f"http://[{address}]/x", allow_private=False)
