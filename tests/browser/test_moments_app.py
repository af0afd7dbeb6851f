"""The moments view in headless Chromium, behind a host page that implements the host side of the MCP
Apps bridge and answers the view's requests through a real tl-mcp server on the sandbox."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, MCPError
from mcp.client.extension import advertise
from mcp.server.apps import APP_MIME_TYPE, EXTENSION_ID
from mcp.types import TextResourceContents
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from tests.browser.cdp import Browser, find_chromium, launch
from tests.server.conftest import World, hls_copy, loopback_socket, serve_app
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
    """The test's half of the host: the page's `mcpRequest` binding, answered with the SDK client.

    With `stream_url`, every get_video answer carries it as its `hls_url`, as the cloud's do.
    """

    def __init__(self, browser: Browser, mcp: Client, page: str, stream_url: str | None = None) -> None:
        self.browser, self.mcp, self.page, self.stream_url = browser, mcp, page, stream_url
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
            self.requests.append({**params["request"], "type": params.get("type")})
        elif method == "Log.entryAdded" and session == self.app:
            self.console.append(params["entry"]["text"])
        elif method == "Runtime.consoleAPICalled" and session == self.app:
            self.console.append(" ".join(str(a.get("value", a.get("description"))) for a in params["args"]))

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

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
            if self.stream_url and params.get("name") == "get_video" and "structuredContent" in body:
                body["structuredContent"]["hls_url"] = self.stream_url
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


@asynccontextmanager
async def open_view(
    browser: Browser,
    mcp: Client,
    view: TextResourceContents,
    csp: dict[str, list[str]],
    tool_input: dict[str, Any],
    result: dict[str, Any],
    stream_url: str | None = None,
) -> AsyncIterator[Host]:
    """A new tab with the host page, showing `view` under `csp` with one tool call's input and result.

    On the way out the requests the view still has in flight are dropped, before the browser goes.
    """
    target = await browser.call("Target.createTarget", {"url": "about:blank"})
    page = (await browser.call("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}))[
        "sessionId"
    ]
    host = Host(browser, mcp, page, stream_url)
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
    args = ", ".join(json.dumps(a) for a in (view.text, csp, tool_input, result, "light"))
    await host.eval_page(f"openApp({args})")
    try:
        yield host
    finally:
        await host.close()


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

        async with open_view(browser, mcp, view, view.meta["ui"]["csp"], args, first) as host:
            # Moments in the result's order, with their times, names (get_video) and pictures
            # (resources/read).
            cards = await host.until_app(
                f"(() => {{ const c = {CARDS}; return c.length === 2"
                " && c.every(x => x.thumb && x.name === 'clip.mp4') ? c : null; })()",
                "two moments with their names and thumbnails",
            )
            assert [(c["start"], c["end"]) for c in cards] == [(m["start"], m["end"]) for m in moments]
            assert all(c["thumb"] == "data:image/jpeg;base64" for c in cards), cards
            assert cards[0]["when"] == f"{_clock(moments[0]['start'])}–{_clock(moments[0]['end'])}"
            bridged = [
                (r["method"], r["params"].get("name") or r["params"].get("uri")) for r, _ in host.calls
            ]
            assert ("tools/call", "get_video") in bridged and (
                "resources/read",
                moments[0]["thumbnail_uri"],
            ) in bridged

            # Keyboard: focus the first moment, Enter plays it from its start and stops near its end.
            await host.eval_app("document.querySelector('.moment').focus()")
            await _plays_from_start_to_end(
                host, moments[0]["start"], moments[0]["end"], lambda: host.key("Enter", 13)
            )
            await _screenshot(host, tmp_path, "moments-app.png")

            # The next page goes through the bridge as tools/call search_videos with the page token.
            await host.eval_app("document.getElementById('more').click()")
            cards = await host.until_app(
                f"(() => {{ const c = {CARDS}; return c.length > 2 ? c : null; }})()", "page 2"
            )
            paged = [body for r, body in host.calls if r["params"].get("arguments", {}).get("page_token")]
            assert len(paged) == 1
            second = paged[0]["structuredContent"]["moments"]
            assert [(c["start"], c["end"]) for c in cards] == [
                (m["start"], m["end"]) for m in moments + second
            ]

            # Dark theme from the host.
            light = await host.eval_app("getComputedStyle(document.body).backgroundColor")
            await host.eval_page("hostNotify('ui/notifications/host-context-changed', {theme: 'dark'})")
            await host.until_app(
                f"getComputedStyle(document.body).backgroundColor !== {json.dumps(light)}", "the dark theme"
            )

            # Nothing left the allowed origins: the sandbox's media origin, and data: pictures.
            allowed = tuple(view.meta["ui"]["csp"]["resourceDomains"])
            assert allowed == (media_origin(world.sandbox.base_url),)
            outside = [
                r["url"] for r in host.requests if not r["url"].startswith((*allowed, "data:", "about:"))
            ]
            assert not outside, outside
            assert any(r["url"].startswith(allowed) for r in host.requests), "the video came from the sandbox"
            assert not [line for line in host.console if "Content Security Policy" in line], host.console


async def _plays_from_start_to_end(
    host: Host, start: float, end: float, choose: Callable[[], Awaitable[Any]]
) -> None:
    """`choose` opens a moment: the player must start on its first frame and stop on its last."""
    await host.eval_app(
        "window.seen = []; document.getElementById('player').addEventListener('playing',"
        " e => seen.push(e.target.currentTime))"
    )
    await choose()
    started = await host.until_app("seen.length ? seen[0] : null", "the player to start", within_s=30)
    assert start - 0.05 <= started <= start + 0.5, (started, start)
    stopped = await host.until_app(
        "(() => { const p = document.getElementById('player'); return p.paused && p.dataset.stopped"
        " ? p.currentTime : null; })()",
        "the player to stop at the moment's end",
        within_s=end - start + 20,
    )
    assert end - 0.1 <= stopped < end, (stopped, end)


def _clock(s: float) -> str:
    minutes, seconds = divmod(s, 60)
    return f"{int(minutes)}:{'0' if seconds < 10 else ''}{seconds:.1f}"


async def _screenshot(host: Host, tmp_path: Path, name: str) -> None:
    shot = await host.browser.call("Page.captureScreenshot", {"format": "png"}, session=host.page)
    folder = Path(ARTIFACTS) if ARTIFACTS else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(base64.b64decode(shot["data"]))


def _apps_client(world: World) -> Client:
    return Client(
        build_server(world.settings()), extensions=[advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})]
    )


async def _view(mcp: Client) -> TextResourceContents:
    (view,) = (await mcp.read_resource(MOMENTS_URI)).contents
    assert isinstance(view, TextResourceContents) and view.meta
    return view


async def _call(mcp: Client, name: str, args: dict[str, Any]) -> dict[str, Any]:
    result = await mcp.call_tool(name, args)
    assert not result.is_error, result
    return result.model_dump(by_alias=True, mode="json", exclude_none=True)


#: Debian's Chromium plays HLS itself (canPlayType says "maybe"); a browser that does not, which is what
#: the bundled hls.js is for, is one whose canPlayType says "" for HLS. The view asks nothing else.
NO_NATIVE_HLS = """(() => { const own = HTMLMediaElement.prototype.canPlayType;
  HTMLMediaElement.prototype.canPlayType = function (type) {
    return /mpegurl/i.test(type) ? "" : own.call(this, type); };
  return document.getElementById('player').canPlayType('application/vnd.apple.mpegurl') === ""; })()"""


@pytest.mark.parametrize("engine", ["hls.js", "native"])
async def test_an_hls_moment_plays_from_its_start_to_its_end(
    world: World, tmp_path: Path, engine: str
) -> None:
    """A cloud-like moment: search finds it, get_video gives an HLS playlist of 2 s segments on another
    origin (a stand-in for the cloud's CDN, with the CORS a CDN sends, since the view's frame has an
    opaque origin). Without native HLS the view plays it through hls.js, else through the <video>."""
    assert CHROMIUM
    folder = tmp_path / "hls"
    folder.mkdir()
    hls_copy(world.sample.path, folder)
    cdn = Starlette(
        routes=[Mount("/", StaticFiles(directory=folder))],
        middleware=[Middleware(CORSMiddleware, allow_origins=["*"])],
    )
    async with (
        serve_app(cdn, loopback_socket()) as stream_origin,
        _apps_client(world) as mcp,
        launch(CHROMIUM, tmp_path / "profile") as browser,
    ):
        view = await _view(mcp)
        args = {"query": "fresh apples", "index_id": world.index_id, "limit": 1}
        found = await _call(mcp, "search_videos", args)
        (moment,) = found["structuredContent"]["moments"]
        # The view's resource names the cloud's CDN for the cloud (tests/server/test_apps.py); here the
        # host allows the stand-in's origin the same way, for media and for hls.js's requests.
        csp = {k: [*view.meta["ui"]["csp"][k], stream_origin] for k in ("resourceDomains", "connectDomains")}
        playlist = f"{stream_origin}/index.m3u8"
        async with open_view(browser, mcp, view, csp, args, found, stream_url=playlist) as host:
            await host.until_app(
                "document.querySelector('.moment .name')?.textContent === 'clip.mp4'",
                "the moment's video name",
            )
            native = await host.eval_app(
                "document.getElementById('player').canPlayType('application/vnd.apple.mpegurl')"
            )
            if engine == "hls.js":
                assert await host.eval_app(NO_NATIVE_HLS)
            elif not native:
                pytest.skip(f"this Chromium has no native HLS ({CHROMIUM})")

            await _plays_from_start_to_end(
                host,
                moment["start"],
                moment["end"],
                lambda: host.eval_app("document.querySelector('.moment').click()"),
            )
            source = await host.eval_app("document.getElementById('player').currentSrc")
            streamed = [r for r in host.requests if r["url"].startswith(stream_origin)]
            fetched = {(r["url"].rsplit("/", 1)[1].rsplit(".", 1)[1], r["type"]) for r in streamed}
            if engine == "hls.js":
                # Media Source Extensions fed by hls.js's own requests for the playlist and its segments.
                assert source.startswith("blob:"), source
                assert {("m3u8", "XHR"), ("ts", "XHR")} <= fetched, fetched
            else:
                assert source == playlist and all(kind != "XHR" for _, kind in fetched), (source, fetched)
            # The video came from the stream, not from the sandbox's MP4, and nothing left the allowed
            # origins.
            assert not [r for r in host.requests if "/media/" in r["url"] and ".mp4" in r["url"]]
            allowed = (*csp["resourceDomains"], *csp["connectDomains"], "data:", "about:", "blob:")
            assert not [r["url"] for r in host.requests if not r["url"].startswith(allowed)]
            assert not [line for line in host.console if "Content Security Policy" in line], host.console
            if engine == "hls.js":
                await _screenshot(host, tmp_path, "moments-app-hls.png")


ANSWER = """(() => { const a = document.getElementById('answer');
  const m = [...a.querySelectorAll('button.marker')];
  return m.length ? {text: a.textContent, markers: m.map(b => b.textContent),
                     labels: m.map(b => b.getAttribute('aria-label'))} : null; })()"""


async def test_a_jockey_answer_shows_its_text_with_each_marker_playing_its_moment(
    world: World, tmp_path: Path
) -> None:
    assert CHROMIUM
    async with _apps_client(world) as mcp, launch(CHROMIUM, tmp_path / "profile") as browser:
        view = await _view(mcp)
        args = {
            "knowledge_store_id": world.knowledge_store_id,
            "input": "What about fresh apples and the ocean?",
        }
        answer = await _call(mcp, "create_response", args)
        data = answer["structuredContent"]
        citations = data["citations"]
        assert len(citations) >= 2, data
        async with open_view(browser, mcp, view, view.meta["ui"]["csp"], args, answer) as host:
            shown = await host.until_app(ANSWER, "the answer with its markers")
            assert shown["text"] == data["text"]
            # Each marker in the text, in the text's order, is a control named for what it does.
            in_text = re.findall("|".join(re.escape(c["marker"]) for c in citations), data["text"])
            assert in_text == [c["marker"] for c in citations] and shown["markers"] == in_text
            assert shown["labels"] == [f"Play moment {m}" for m in in_text]
            assert await host.eval_app("document.getElementById('title').textContent") == "Jockey's answer"
            cards = await host.until_app(
                f"(() => {{ const c = {CARDS}; return c.length === {len(citations)} ? c : null; }})()",
                "the cited moments",
            )
            assert [(c["start"], c["end"]) for c in cards] == [
                (c["start_sec"], c["end_sec"]) for c in citations
            ]

            # Each marker plays its own citation: the player seeks to that citation's start and plays on.
            await host.eval_app(
                "window.seeked = []; document.getElementById('player').addEventListener('seeked',"
                " e => seeked.push(e.target.currentTime))"
            )
            for i, cite in enumerate(citations):
                await host.eval_app(f"document.querySelectorAll('#answer .marker')[{i}].click()")
                at = await host.until_app(
                    f"seeked.length > {i} ? seeked[{i}] : null", f"the seek for {cite['marker']}", within_s=30
                )
                assert cite["start_sec"] - 0.05 <= at <= cite["start_sec"] + 0.2, (at, cite)
                current = await host.eval_app(
                    "document.querySelector('.moment[aria-current=\"true\"]').dataset.index"
                )
                assert current == str(i)
                await host.until_app(
                    f"(() => {{ const p = document.getElementById('player');"
                    f" return !p.paused && p.currentTime > {cite['start_sec']} + 0.2; }})()",
                    f"{cite['marker']} to play on",
                )
            await _screenshot(host, tmp_path, "jockey-answer.png")

            # The cloud's markers are "[n]"; two citations may share one (the k-th time it occurs opens the
            # k-th of them), and the text may name a source again (the last citation with that marker).
            first, second = citations[0], citations[1]
            cloudy = {
                **answer,
                "structuredContent": {
                    **data,
                    "text": "Apples [1], the ocean [1], apples [2], the ocean again [1].",
                    "citations": [
                        {**first, "marker": "[1]"},
                        {**second, "marker": "[1]"},
                        {**first, "marker": "[2]"},
                    ],
                },
            }
            await host.eval_page(f"hostNotify('ui/notifications/tool-result', {json.dumps(cloudy)})")
            shown = await host.until_app(
                "(() => { const m = [...document.querySelectorAll('#answer .marker')];"
                " return m.length && m[0].textContent === '[1]'"
                " ? m.map(b => [b.textContent, b.dataset.index]) : null; })()",
                "the cloud-style markers",
            )
            assert shown == [["[1]", "0"], ["[1]", "1"], ["[2]", "2"], ["[1]", "1"]]
            assert (
                await host.eval_app("document.getElementById('answer').textContent")
                == cloudy["structuredContent"]["text"]
            )


async def test_an_analysis_jobs_segments_are_moments_that_play(world: World, tmp_path: Path) -> None:
    """The result wait_for_task ends an analysis job with carries the task's segments inside its own;
    the view lists each segment (definition as tag, scalar fields as quote) and plays it."""
    assert CHROMIUM
    apps = advertise(EXTENSION_ID, {"mimeTypes": [APP_MIME_TYPE]})
    chapters = {
        "id": "chapter",
        "description": "chapters",
        "fields": [{"name": "title", "type": "string", "description": "chapter title"}],
    }
    async with (
        Client(build_server(world.settings(toolsets="all")), extensions=[apps]) as mcp,
        launch(CHROMIUM, tmp_path / "profile") as browser,
    ):
        view = await _view(mcp)
        at = {"index_id": world.index_id, "video_id": world.video_id}
        started = await _call(
            mcp, "start_analysis_task", {**at, "segment_definitions": [chapters], "wait_s": 0}
        )
        job_id = started["structuredContent"]["job_id"]
        args = {"id": job_id, "wait_s": 60}
        done = await _call(mcp, "wait_for_task", args)
        segments = done["structuredContent"]["result"]["segments"]
        assert len(segments) == len(world.sample.scenes), segments
        async with open_view(browser, mcp, view, view.meta["ui"]["csp"], args, done) as host:
            cards = await host.until_app(
                f"(() => {{ const c = {CARDS}; return c.length === {len(segments)}"
                " && c.every(x => x.name === 'clip.mp4') ? c : null; })()",
                "one moment per segment, named by get_video",
            )
            assert [(c["start"], c["end"]) for c in cards] == [(s["start"], s["end"]) for s in segments]
            quotes = await host.eval_app(
                "[...document.querySelectorAll('.moment .quote')].map(q => q.textContent)"
            )
            assert quotes == [f"“title: {s['fields']['title']}”" for s in segments]
            await _plays_from_start_to_end(
                host,
                segments[1]["start"],
                segments[1]["end"],
                lambda: host.eval_app("document.querySelectorAll('.moment')[1].click()"),
            )
            await _screenshot(host, tmp_path, "analysis-segments.png")
