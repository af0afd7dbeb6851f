"""`tl-mcp demo`: a newcomer's first agent session, end to end, offline and without a key.

It writes a small sample video with known content, starts `tl-mcp serve` as a real stdio subprocess on
the embedded sandbox, and drives it with the `mcp` SDK client the way an agent would: list the tools,
create a knowledge store and an index, upload the video with byte progress, wait for processing, search
(saving a thumbnail), ask Jockey with the answer streaming live, ask a follow-up in the same session and
embed a text. Every step prints what it did, the ids it got and how long it took; any failure stops the
demo with a message that says what went wrong and exits non-zero.

One module on purpose (a little over 500 lines): it is one script, the ten steps in the order a newcomer
reads them, with the client session and the failure report they share; split, the story would be spread
over files nobody else imports.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tl_mcp.demo_args import add_arguments
from tl_mcp.demo_console import Console, human_bytes

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult

    from tl_mcp.samples import SampleInfo

STEPS = 10
SEARCH_QUERY = "fresh apples"
QUESTION = "What does the video say about fresh apples, and what do they cost?"
FOLLOW_UP = "And what is the ocean chapter about?"
EMBED_TEXT = "a basket of fresh apples at the market"
#: Passed through to the server when set: where Python finds packages and temporary files.
_PASSED_ENV = ("PYTHONPATH", "TMPDIR", "LD_LIBRARY_PATH", "LANG", "LC_ALL")


class DemoError(Exception):
    """A step failed; the message says which, why, and where to look."""


def server_command(media_dir: Path, sandbox_dir: Path) -> list[str]:
    """How the demo starts the server: the same entry point as `tl-mcp serve`, in this interpreter."""
    return [
        sys.executable,
        "-m",
        "tl_mcp.cli",
        "serve",
        "--backend",
        "sandbox",
        "--allow-dir",
        str(media_dir),
        "--sandbox-dir",
        str(sandbox_dir),
        # Paced like a model's tokens, so the demo's "streams live" is what the viewer sees.
        "--sandbox-stream-delay",
        "0.04",
    ]


def server_env() -> dict[str, str]:
    """The server's environment: the sandbox and never a key, whatever the caller's shell has set.

    The SDK adds only its short list of safe variables (PATH, HOME, …) to what is given here, so no
    TWELVELABS_* or TL_MCP_* setting of the caller leaks in and changes what the demo shows.
    """
    env = {k: os.environ[k] for k in _PASSED_ENV if k in os.environ}
    env.update(TL_MCP_BACKEND="sandbox", TL_MCP_LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    return env


@dataclass
class Outputs:
    root: Path
    media: Path
    sandbox: Path
    server_log: Path
    files: list[Path] = field(default_factory=list)


@dataclass
class Session:
    """The demo's side of the conversation: calls tools, renders their progress, keeps the ids."""

    client: Client
    console: Console
    ids: dict[str, str] = field(default_factory=dict)

    async def call(
        self, name: str, arguments: dict[str, Any], *, on_progress: Any = None
    ) -> tuple[dict[str, Any], CallToolResult]:
        result = await self.client.call_tool(name, arguments, progress_callback=on_progress)
        if result.is_error:
            raise DemoError(f"{name} failed: {_text_of(result).strip() or 'no message'}")
        data = result.structured_content
        if not isinstance(data, dict):
            raise DemoError(f"{name} returned no structured result (got {type(data).__name__})")
        return data, result

    async def follow_job(self, data: dict[str, Any], what: str, deadline: float) -> dict[str, Any]:
        """A result with status in_progress carries a job_id: wait_for_task resumes it where it left off."""
        while data.get("status") == "in_progress" and data.get("job_id"):
            job_id = str(data["job_id"])
            self.console.line(
                f"  job handle {job_id}: {what} continues server-side; wait_for_task resumes it"
            )
            waited, _ = await self.call(
                "wait_for_task",
                {"id": job_id, "wait_s": _remaining(deadline, 60.0)},
                on_progress=self.status_printer(what),
            )
            if waited.get("done"):
                inner = waited.get("result")
                if not isinstance(inner, dict):
                    raise DemoError(f"wait_for_task({job_id}) finished without the {what} result")
                return inner
            _check_deadline(deadline, what)
        return data

    def status_printer(self, what: str) -> Any:
        last: list[str | None] = [None]

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            if total:
                self.console.bar(progress, total, message or what)
                return
            text = message or last[0] or what
            self.console.activity(text, changed=text != last[0])
            last[0] = text

        return on_progress


def _text_of(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content if block.type == "text")


def _remaining(deadline: float, cap: float) -> float:
    return max(1.0, min(cap, deadline - time.monotonic()))


def _check_deadline(deadline: float, what: str) -> None:
    if time.monotonic() >= deadline:
        raise DemoError(
            f"gave up waiting for {what}: the demo's time limit ran out (raise it with --timeout)"
        )


# ---------------------------------------------------------------------------------------------- steps


def make_sample(console: Console, outputs: Outputs) -> SampleInfo:
    from tl_mcp.samples import espeak_available, make_sample_video

    console.step(1, STEPS, "Make a sample video")
    path = outputs.media / "sample.mp4"
    info = make_sample_video(path)
    outputs.files.append(path)
    console.info("file", f"{path} ({human_bytes(path.stat().st_size)}, {info.duration:.0f} s)")
    for scene in info.scenes:
        console.line(
            f"    {scene.start:4.1f}–{scene.end:4.1f} s  “{' / '.join(scene.lines)}”  {scene.narration}"
        )
    if info.has_speech:
        console.info("narration", "subtitles + speech (espeak-ng)")
    else:
        hint = "" if espeak_available() else " (install espeak-ng to also hear it spoken)"
        console.info("narration", "subtitles" + hint)
    console.done()
    return info


async def run_session(console: Console, outputs: Outputs, sample: SampleInfo, timeout_s: float) -> None:
    import anyio

    with anyio.fail_after(timeout_s):
        await _run_session(console, outputs, sample, time.monotonic() + timeout_s)


async def _run_session(console: Console, outputs: Outputs, sample: SampleInfo, deadline: float) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    console.step(2, STEPS, "Start tl-mcp over stdio on the embedded sandbox")
    command = server_command(outputs.media, outputs.sandbox)
    params = StdioServerParameters(command=command[0], args=command[1:], env=server_env())
    console.info("command", "python " + " ".join(command[1:]))
    console.info("server log", outputs.server_log)
    with outputs.server_log.open("w", encoding="utf-8") as errlog:
        transport = stdio_client(params, errlog=errlog)
        async with Client(transport, read_timeout_seconds=deadline - time.monotonic()) as client:
            info = client.server_info
            console.info("server", f"{info.name} {info.version}" if info else "connected")
            console.info("protocol", client.protocol_version)
            console.done("connected")
            await _agent_session(Session(client, console), outputs, sample, deadline)


async def _agent_session(s: Session, outputs: Outputs, sample: SampleInfo, deadline: float) -> None:
    c = s.console

    c.step(3, STEPS, "List the tools")
    tools = (await s.client.list_tools()).tools
    names = [t.name for t in tools]
    for i in range(0, len(names), 5):
        c.line("    " + ", ".join(names[i : i + 5]))
    needed = {"create_knowledge_store", "create_index", "upload_asset", "wait_for_task", "search_videos"}
    needed |= {"create_response", "continue_session", "create_embedding"}
    missing = sorted(needed - set(names))
    if missing:
        raise DemoError(f"the server does not offer {', '.join(missing)}")
    c.done(f"{len(names)} tools")

    c.step(4, STEPS, "Create a knowledge store (for Jockey) and a search index")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    store, _ = await s.call(
        "create_knowledge_store",
        {"name": f"demo-{stamp}", "description": "tl-mcp demo: a generated sample video"},
    )
    index, _ = await s.call("create_index", {"name": f"demo-{stamp}"})
    s.ids["knowledge_store_id"], s.ids["index_id"] = str(store["id"]), str(index["id"])
    c.info("knowledge store", s.ids["knowledge_store_id"])
    c.info("index", s.ids["index_id"])
    c.done()

    c.step(5, STEPS, "Upload the sample into both")
    upload, _ = await s.call(
        "upload_asset",
        {
            "path": str(sample.path.resolve()),
            "index_id": s.ids["index_id"],
            "knowledge_store_id": s.ids["knowledge_store_id"],
            "wait_s": _remaining(deadline, 60.0),
        },
        on_progress=s.status_printer("upload"),
    )
    upload = await s.follow_job(upload, "the upload", deadline)
    for key in ("asset_id", "indexed_asset_id", "item_id"):
        if not upload.get(key):
            raise DemoError(f"upload_asset returned no {key}: {upload}")
        s.ids[key] = str(upload[key])
    c.info("asset", s.ids["asset_id"])
    c.info("indexed asset", f"{s.ids['indexed_asset_id']} (indexing: {upload.get('indexing_status')})")
    c.info("store item", f"{s.ids['item_id']} ({upload.get('item_status')})")
    c.done()

    c.step(6, STEPS, "Wait until the video is indexed and the store item is ready")
    await _wait_ready(
        s, "indexing", {"id": s.ids["indexed_asset_id"], "index_id": s.ids["index_id"]}, deadline
    )
    await _wait_ready(
        s,
        "knowledge-store item",
        {"id": s.ids["item_id"], "knowledge_store_id": s.ids["knowledge_store_id"]},
        deadline,
    )
    c.done("ready")

    c.step(7, STEPS, f"Search the index for “{SEARCH_QUERY}”")
    found, raw = await s.call(
        "search_videos",
        {"query": SEARCH_QUERY, "index_id": s.ids["index_id"], "limit": 3, "include_thumbnails": 1},
    )
    moments = found.get("moments") or []
    if not moments:
        raise DemoError(f"search_videos found no moment for {SEARCH_QUERY!r}")
    for i, m in enumerate(moments, 1):
        score = f"score {m['score']:.3f}" if isinstance(m.get("score"), int | float) else ""
        c.line(f"    {i}. video {m.get('video_id')}  {m['start']:5.1f}–{m['end']:5.1f} s  {score}")
    truth = next(sc for sc in sample.scenes if "APPLES" in sc.title)
    top = moments[0]
    overlap = top["start"] < truth.end and top["end"] > truth.start
    c.line(
        f"    ground truth: the apples scene is {truth.start:.0f}–{truth.end:.0f} s "
        f"({'the top hit overlaps it' if overlap else 'the top hit is elsewhere'})"
    )
    thumb = _save_thumbnail(raw, outputs)
    c.info("thumbnail", thumb)
    c.done()

    c.step(8, STEPS, "Ask Jockey about the knowledge store (the answer streams live)")
    c.info("question", QUESTION)
    answer = await _ask(s, "create_response", {"knowledge_store_id": s.ids["knowledge_store_id"]}, QUESTION)
    s.ids["session_id"] = str(answer.get("session_id") or "")
    if not s.ids["session_id"]:
        raise DemoError("create_response returned no session_id to continue")
    c.done()

    c.step(9, STEPS, "Ask a follow-up in the same session")
    c.info("question", FOLLOW_UP)
    follow = await _ask(s, "continue_session", {"session_id": s.ids["session_id"]}, FOLLOW_UP)
    _write_transcript(outputs, [(QUESTION, answer), (FOLLOW_UP, follow)])
    c.done()

    c.step(10, STEPS, "Embed a text")
    emb, _ = await s.call("create_embedding", {"text": EMBED_TEXT})
    vectors = emb.get("embeddings") or []
    if not vectors:
        raise DemoError("create_embedding returned no vector")
    v = vectors[0]
    head = ", ".join(f"{x:+.3f}" for x in v["head"][:4])
    c.info("text", EMBED_TEXT)
    made_by = f" (made offline by {emb['embedder']})" if emb.get("embedder") else ""
    c.info("vector", f"{emb.get('model_name')}{made_by}: {v['dims']} dims, norm {v['norm']:.3f}, [{head}, …]")
    c.done()


async def _wait_ready(s: Session, what: str, target: dict[str, str], deadline: float) -> None:
    while True:
        data, _ = await s.call(
            "wait_for_task",
            {**target, "wait_s": _remaining(deadline, 60.0)},
            on_progress=s.status_printer(what),
        )
        status = str(data.get("status"))
        if data.get("done"):
            if status.lower() not in ("ready", "completed", "complete", "done", "succeeded"):
                raise DemoError(f"{what} of {target['id']} ended with status {status}: {data.get('detail')}")
            s.console.line(f"  {what}: {status} ({data.get('kind')} {target['id']})")
            return
        _check_deadline(deadline, what)


async def _ask(s: Session, tool: str, target: dict[str, str], question: str) -> dict[str, Any]:
    """Stream one Jockey turn: progress messages carry the new text; `progress` counts its characters."""
    streamed: list[str] = []
    notes: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        if not message:
            return
        so_far = sum(len(p) for p in streamed)
        if abs(progress - (so_far + len(message))) < 0.5:
            streamed.append(message)
            s.console.stream(message)
        else:
            notes.append(message)
            s.console.line(f"  · {message}")

    data, _ = await s.call(tool, {**target, "input": question}, on_progress=on_progress)
    data = await _finish_stream(s, data, on_progress)
    s.console.end_line()
    text = str(data.get("text") or "")
    live = "".join(streamed)
    if not text.strip():
        raise DemoError(f"{tool} returned an empty answer")
    if not live:
        s.console.line("  (no live text arrived; the answer in full:)")
        s.console.stream(text)
        s.console.end_line()
    elif live != text:
        s.console.line("  note: the streamed text differs from the final answer; the final answer wins")
    if data.get("citations"):
        s.console.line("  cited moments:")
    for cite in data.get("citations") or []:
        span = f"{cite.get('start_sec') or 0:.1f}–{cite.get('end_sec') or 0:.1f} s"
        s.console.line(f"    {cite.get('marker')} {cite.get('title') or cite.get('item_id')}  {span}")
    s.console.info("session", data.get("session_id"))
    s.console.info("response", data.get("response_id"))
    s.console.info("streamed", f"{len(live)} characters live, {len(text)} in the result")
    return data


async def _finish_stream(s: Session, data: dict[str, Any], on_progress: Any) -> dict[str, Any]:
    """A long answer comes back in_progress with a job_id; wait_for_task streams the rest."""
    while data.get("status") == "in_progress" and data.get("job_id"):
        waited, _ = await s.call(
            "wait_for_task", {"id": str(data["job_id"]), "wait_s": 60.0}, on_progress=on_progress
        )
        inner = waited.get("result")
        if not isinstance(inner, dict):
            raise DemoError("wait_for_task returned no Jockey result")
        data = inner
    return data


def _save_thumbnail(result: CallToolResult, outputs: Outputs) -> Path:
    for block in result.content:
        if block.type == "image":
            suffix = {"image/png": ".png", "image/webp": ".webp", "image/gif": ".gif"}.get(
                block.mime_type, ".jpg"
            )
            path = outputs.root / f"search-thumbnail{suffix}"
            path.write_bytes(base64.b64decode(block.data))
            outputs.files.append(path)
            return path
    raise DemoError("search_videos returned no thumbnail image (include_thumbnails=1 was asked)")


def _write_transcript(outputs: Outputs, turns: Sequence[tuple[str, dict[str, Any]]]) -> None:
    lines = ["# tl-mcp demo: Jockey session", ""]
    for question, data in turns:
        lines += [f"## {question}", "", str(data.get("text") or "").strip(), ""]
        lines += [
            f"- {c.get('marker')} item {c.get('item_id')} {c.get('start_sec')}–{c.get('end_sec')} s"
            for c in data.get("citations") or []
        ]
        lines.append("")
    path = outputs.root / "jockey-session.md"
    path.write_text("\n".join(lines), "utf-8")
    outputs.files.append(path)


# ---------------------------------------------------------------------------------------------- entry


def _prepare(output_dir: Path, keep: bool, tmp: Path) -> Outputs:
    root = output_dir.expanduser().resolve()
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    sandbox = root / "sandbox" if keep else tmp / "sandbox"
    if keep and sandbox.exists():
        shutil.rmtree(sandbox)
    sandbox.mkdir(parents=True, exist_ok=True)
    return Outputs(root=root, media=media, sandbox=sandbox, server_log=root / "server.log")


def _tail(path: Path, lines: int = 15) -> list[str]:
    try:
        return path.read_text("utf-8", errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Run the demo; 0 when every step worked, 1 (with the reason printed) when one failed."""
    import anyio

    console = Console(out)
    started = time.monotonic()
    console.line("tl-mcp demo — an agent session against the offline sandbox (no API key, no network)")
    with tempfile.TemporaryDirectory(prefix="tl-mcp-demo-") as tmp:
        outputs: Outputs | None = None
        try:
            outputs = _prepare(args.output_dir, args.keep, Path(tmp))
            sample = make_sample(console, outputs)
            anyio.run(run_session, console, outputs, sample, float(args.timeout))
        except KeyboardInterrupt:
            console.line("\nDemo interrupted.")
            return 130
        except Exception as exc:
            return _failed(console, outputs, _root_cause(exc), args.timeout)
        console.line()
        console.line(f"Demo finished in {time.monotonic() - started:.1f} s. Written to {outputs.root}:")
        for path in [*outputs.files, outputs.server_log]:
            console.line(f"  {path.relative_to(outputs.root)}")
        if args.keep:
            console.line(f"  sandbox/ (kept; reuse it with: tl-mcp serve --sandbox-dir {outputs.sandbox})")
    return 0


def _root_cause(exc: BaseException) -> BaseException:
    """Task groups wrap failures in exception groups; the first real error is the one to show."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


def _failed(console: Console, outputs: Outputs | None, exc: BaseException, timeout: float) -> int:
    if isinstance(exc, TimeoutError):
        why = f"the demo did not finish within {timeout:.0f} s (raise it with --timeout)"
    elif isinstance(exc, DemoError):
        why = str(exc)
    elif isinstance(exc, ImportError):
        why = f"a package is missing ({exc}); install the sandbox extra: pip install 'tl-mcp[sandbox]'"
    else:
        why = f"{type(exc).__name__}: {exc}"
    console.line()
    console.line(f"Demo failed: {why}")
    if outputs is not None:
        tail = _tail(outputs.server_log)
        if tail:
            console.line(f"Last lines of the server log ({outputs.server_log}):")
            for line in tail:
                console.line(f"  {line}")
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tl-mcp demo", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m tl_mcp.demo [flags]`; also accepts the argv of `tl-mcp demo [flags]`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["demo"]:
        args = args[1:]
    return run(build_parser().parse_args(args))


if __name__ == "__main__":
    sys.exit(main())
