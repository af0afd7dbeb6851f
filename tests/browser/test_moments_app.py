"""The moments view in headless Chromium, behind a host page that implements the host side of the MCP
Apps bridge and answers the view's requests through a real tl-mcp server on the sandbox."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import TextResourceContents

from tests.browser.cdp import Browser, find_chromium, launch
from tests.server.conftest import World
from tl_mcp.server import build_server
from tl_mcp.server.apps import MOMENTS_URI, media_origin

CHROMIUM = find_chromium()
HOST_PAGE = Path(__file__).with_name("host.html")
#: Where screenshots go when CI collects them; a temporary folder otherwise.
ARTIFACTS = os.environ.get("TL_MCP_TEST_ARTIFACTS")

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install chromium; .ci/run does)"),
]


class Host:
    """The test's half of the host: the page's `mcpRequest` binding, answered with the SDK client."""

    def __init__(self, browser: Browser, mcp: Client, page: str) -> None:
        self.browser, self.mcp, self.page = browser, mcp, page
        self.app: str | None = None
        self.requests: list[dict[str, Any]] = []  # every network request the view made
        self.console: list[str] = []
        self.calls: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (bridge request, what it got)
        self._tasks: set[asyncio.Task[None]] = set()
        browser.on(self._event)

    def _event(self, message: dict[str, Any]) -> None:
        method, params, session = message["method"], message.get("params", {}), message.get("sessionId")
        if method == "Target.attachedToTarget" and params["targetInfo"]["type"] == "iframe":
            self._spawn(self._attach_app(params["sessionId"]))
        elif method == "Runtime.bindingCalled" and session == self.page and params["name"] == "mcpRequest":
            self._spawn(self._answer(json.loads(params["payload"])))
        elif method == "Network.requestWillBeSent" and session == self.app:
            self.requests.append(params["request"])
        elif method == "Log.entryAdded" and session == self.app:
            self.console.append(params["entry"]["text"])
        elif method == "Runtime.consoleAPICalled" and session == self.app:
            self.console.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach_app(self, session: str) -> None:
        # The view runs as an out-of-process frame (a sandboxed, opaque origin); it waits for us to
        # start listening, so not one of its requests goes unseen.
        for domain in ("Network", "Log", "Runtime"):
            await self.browser.call(f"{domain}.enable", session=session)
        self.app = session
        await self.browser.call("Runtime.runIfWaitingForDebugger", session=session)

    async def _answer(self, request: dict[str, Any]) -> None:
        params = request["params"] or {}
        try:
            if request["method"] == "tools/call":
                got: Any = await self.mcp.call_tool(params["name"], params.get("arguments") or {})
            else:
                got = await self.mcp.read_resource(params["uri"])
            body = got.model_dump(by_alias=True, mode="json", exclude_none=True)
            self.calls.append((request, body))
            reply = f"hostReply({json.dumps(request['id'])}, {json.dumps(body)})"
        except MCPError as exc:
            error = {"code": exc.code, "message": exc.message}
            reply = f"hostReply({json.dumps(request['id'])}, undefined, {json.dumps(error)})"
        await self.browser.call("Runtime.evaluate", {"expression": reply}, session=self.page)

    async def eval_page(self, expression: str) -> Any:
        return await _value(self.browser, expression, self.page)

    async def eval_app(self, expression: str) -> Any:
        assert self.app, "the view's frame is not attached"
        return await _value(self.browser, expression, self.app)

    async def until_app(self, expression: str, what: str, within_s: float = 20) -> Any:
        deadline = asyncio.get_running_loop().time() + within_s
        while True:
            value = await self.eval_app(expression) if self.app else None
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}; console: {self.console}")
            await asyncio.sleep(0.1)

    async def key(self, key: str, code: int) -> None:
        for kind in ("keyDown", "keyUp"):
            await self.browser.call(
                "Input.dispatchKeyEvent",
                {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code, "text": "\r"}
                if kind == "keyDown" and key == "Enter"
                else {"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code},
                session=self.page,
            )


async def _value(browser: Browser, expression: str, session: str) -> Any:
    reply = await browser.call(
        "Runtime.evaluate",
        {"expression": expression, "returnByValue": True, "awaitPromise": True},
        session=session,
    )
    if "exceptionDetails" in reply:
        raise AssertionError(f"{expression!r} threw: {reply['exceptionDetails']}")
    return reply["result"].get("value")


CARDS = """[...document.querySelectorAll('.moment')].map(b => ({
  start: Number(b.dataset.start), end: Number(b.dataset.end),
  when: b.querySelector('.when').textContent, name: b.querySelector('.name').textContent,
  thumb: b.querySelector('img.thumb') ? b.querySelector('img.thumb').src.slice(0, 22) : null}))"""


async def test_the_moments_view_lists_plays_and_pages_in_chromium(world: World, tmp_path: Path) -> None:
    assert CHROMIUM
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    async with (
        Client(build_server(world.settings()), extensions=[apps]) as mcp,
        launch(CHROMIUM, tmp_path / "profile") as browser,
    ):
        (view,) = (await mcp.read_resource(MOMENTS_URI)).contents
        assert isinstance(view, TextResourceContents) and view.meta
        args = {
            "query": "quarterly sales, fresh apples and the ocean",
            "index_id": world.index_id,
            "limit": 2,
        }
        first = (await mcp.call_tool("search_videos", args)).model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        moments = first["structuredContent"]["moments"]
        assert len(moments) == 2, moments
        assert first["structuredContent"]["next_page_token"], "paging needs a second page"

        target = await browser.call("Target.createTarget", {"url": "about:blank"})
        page = (
            await browser.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
        )["sessionId"]
        host = Host(browser, mcp, page)
        await browser.call(
            "Target.setAutoAttach",
            {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
            session=page,
        )
        for domain in ("Page", "Runtime"):
            await browser.call(f"{domain}.enable", session=page)
        await browser.call("Runtime.addBinding", {"name": "mcpRequest"}, session=page)
        await browser.call("Page.navigate", {"url": HOST_PAGE.as_uri()}, session=page)
        deadline = asyncio.get_running_loop().time() + 20
        while await host.eval_page("typeof openApp") != "function":
            assert asyncio.get_running_loop().time() < deadline, "the host page did not load"
            await asyncio.sleep(0.05)
        opened = (
            f"openApp({json.dumps(view.text)}, {json.dumps(view.meta['ui']['csp'])}, {json.dumps(args)}, "
            f"{json.dumps(first)}, 'light')"
        )
        await host.eval_page(opened)

        # Moments in the result's order, with their times, names (get_video) and pictures (resources/read).
        cards = await host.until_app(
            f"(() => {{ const c = {CARDS}; return c.length === 2"
            " && c.every(x => x.thumb && x.name === 'clip.mp4') ? c : null; })()",
            "two moments with their names and thumbnails",
        )
        assert [(c["start"], c["end"]) for c in cards] == [(m["start"], m["end"]) for m in moments]
        assert all(c["thumb"] == "data:image/jpeg;base64" for c in cards), cards
        assert cards[0]["when"] == f"{_clock(moments[0]['start'])}–{_clock(moments[0]['end'])}"
        bridged = [(r["method"], r["params"].get("name") or r["params"].get("uri")) for r, _ in host.calls]
        assert ("tools/call", "get_video") in bridged and (
            "resources/read",
            moments[0]["thumbnail_uri"],
        ) in bridged

        # Keyboard: focus the first moment, Enter plays it from its start and stops near its end.
        await host.eval_app("document.querySelector('.moment').focus()")
        await host.eval_app(
            "window.seen = []; document.getElementById('player').addEventListener('playing',"
            " e => seen.push(e.target.currentTime))"
        )
        await host.key("Enter", 13)
        started = await host.until_app("seen.length ? seen[0] : null", "the player to start", within_s=30)
        start, end = moments[0]["start"], moments[0]["end"]
        assert start - 0.05 <= started <= start + 0.5, (started, start)
        stopped = await host.until_app(
            "(() => { const p = document.getElementById('player'); return p.paused && p.dataset.stopped"
            " ? p.currentTime : null; })()",
            "the player to stop at the moment's end",
            within_s=end - start + 20,
        )
        assert end - 0.1 <= stopped < end, (stopped, end)
        await _screenshot(browser, page, tmp_path)

        # The next page goes through the bridge as tools/call search_videos with the page token.
        await host.eval_app("document.getElementById('more').click()")
        cards = await host.until_app(
            f"(() => {{ const c = {CARDS}; return c.length > 2 ? c : null; }})()", "page 2"
        )
        paged = [body for r, body in host.calls if r["params"].get("arguments", {}).get("page_token")]
        assert len(paged) == 1
        second = paged[0]["structuredContent"]["moments"]
        assert [(c["start"], c["end"]) for c in cards] == [(m["start"], m["end"]) for m in moments + second]

        # Dark theme from the host.
        light = await host.eval_app("getComputedStyle(document.body).backgroundColor")
        await host.eval_page("hostNotify('ui/notifications/host-context-changed', {theme: 'dark'})")
        await host.until_app(
            f"getComputedStyle(document.body).backgroundColor !== {json.dumps(light)}", "the dark theme"
        )

        # Nothing left the allowed origins: the sandbox's media origin, and data: pictures.
        allowed = tuple(view.meta["ui"]["csp"]["resourceDomains"])
        assert allowed == (media_origin(world.sandbox.base_url),)
        outside = [r["url"] for r in host.requests if not r["url"].startswith((*allowed, "data:", "about:"))]
        assert not outside, outside
        assert any(r["url"].startswith(allowed) for r in host.requests), "the video came from the sandbox"
        assert not [line for line in host.console if "Content Security Policy" in line], host.console


def _clock(s: float) -> str:
    minutes, seconds = divmod(s, 60)
    return f"{int(minutes)}:{'0' if seconds < 10 else ''}{seconds:.1f}"


async def _screenshot(browser: Browser, page: str, tmp_path: Path) -> None:
    shot = await browser.call("Page.captureScreenshot", {"format": "png"}, session=page)
    folder = Path(ARTIFACTS) if ARTIFACTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "moments-app.png").write_bytes(base64.b64decode(shot["data"]))
