"""A small Chrome DevTools Protocol client over `--remote-debugging-pipe`: no websocket library and no
browser download, only the Debian chromium binary and two pipes (fd 3 in, fd 4 out, NUL-delimited JSON)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


class CdpError(RuntimeError):
    pass


class Browser:
    """One headless Chromium; `call` sends a command (to a page session with `session`), `on` listens."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self._out, self._in = to_browser, from_browser
        self._buffer = b""
        self._next = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._listeners: list[Callable[[dict[str, Any]], None]] = []
        asyncio.get_running_loop().add_reader(from_browser, self._readable)

    def _readable(self) -> None:
        chunk = os.read(self._in, 1 << 20)
        if not chunk:
            asyncio.get_running_loop().remove_reader(self._in)
            for future in self._waiting.values():
                if not future.done():
                    future.set_exception(CdpError("chromium closed the pipe"))
            return
        self._buffer += chunk
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw)
            if "id" in message:
                future = self._waiting.pop(message["id"], None)
                if future is not None and not future.done():
                    future.set_result(message)
            else:
                for listener in list(self._listeners):
                    listener(message)

    def on(self, listener: Callable[[dict[str, Any]], None]) -> None:
        self._listeners.append(listener)

    async def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> Any:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[self._next] = future
        os.write(self._out, json.dumps(message).encode() + b"\0")
        reply = await asyncio.wait_for(future, 30)
        if "error" in reply:
            raise CdpError(f"{method}: {reply['error']}")
        return reply.get("result", {})


@asynccontextmanager
async def launch(chromium: str, profile: Path) -> AsyncIterator[Browser]:
    to_browser_r, to_browser_w = os.pipe()
    from_browser_r, from_browser_w = os.pipe()
    flags = [
        "--headless=new",
        "--remote-debugging-pipe",
        f"--user-data-dir={profile}",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-gpu",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--mute-audio",
        "--autoplay-policy=no-user-gesture-required",
        # Containers (and CI runners as root) have no user namespaces for Chromium's own sandbox.
        "--no-sandbox",
        "--window-size=1000,900",
        "about:blank",
    ]
    # Chromium reads commands on fd 3 and writes replies on fd 4; a Python trampoline puts the pipes
    # there (a POSIX shell's redirections take single-digit fds only, and pytest's are higher).
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
        "os.execv(sys.argv[3], sys.argv[3:])",
        str(to_browser_r),
        str(from_browser_w),
        chromium,
        *flags,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        pass_fds=(to_browser_r, from_browser_w),
    )
    os.close(to_browser_r)
    os.close(from_browser_w)
    browser = Browser(to_browser_w, from_browser_r)
    try:
        yield browser
    finally:
        asyncio.get_running_loop().remove_reader(from_browser_r)
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        os.close(to_browser_w)
        os.close(from_browser_r)
