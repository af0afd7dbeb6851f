"""`tl-mcp` command line: serve (stdio or HTTP), sandbox, tools (reference from live schemas), demo.

Everything human-readable goes to stderr, except the explicit output of `tl-mcp tools`: in stdio mode
stdout carries the protocol and nothing else.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

from tl_mcp import __version__
from tl_mcp.config import ConfigError, Settings
from tl_mcp.redaction import install_log_redaction
from tl_mcp.toolsets import ALL_TOOLSETS, TOOLSETS, WRITE_TOOLSET

log = logging.getLogger("tl_mcp")

TOOLS_START = "<!-- tools:start -->"
TOOLS_END = "<!-- tools:end -->"
COMMANDS = ("serve", "sandbox", "tools", "demo")


def _setup_logging(level: str, style: str = "text") -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    if style == "json":
        from tl_mcp.logfmt import JsonFormatter

        for handler in logging.getLogger().handlers:
            handler.setFormatter(JsonFormatter())
    # Every record, whichever library logs it (httpcore traces response headers at DEBUG), is masked.
    install_log_redaction()
    # One line per upstream request is noise at INFO; keep it for DEBUG.
    if logging.getLogger().level > logging.DEBUG:
        logging.getLogger("httpx2").setLevel(logging.WARNING)


def _serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--transport", choices=["stdio", "http"], help="stdio (default) or http (streamable HTTP at /mcp)"
    )
    p.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default 8000)")
    p.add_argument("--max-connections", type=int, help="HTTP: most connections open at once (default 500)")
    p.add_argument(
        "--read-timeout", type=float, help="HTTP: seconds request headers may take and a body may stall"
    )
    p.add_argument(
        "--backend", choices=["auto", "cloud", "sandbox"], help="auto: cloud with a key, else sandbox"
    )
    p.add_argument("--base-url", help="TwelveLabs API root (a sandbox URL works too)")
    p.add_argument("--sandbox-dir", help="where the embedded sandbox keeps its data")
    p.add_argument(
        "--sandbox-analyzers", help="embedded sandbox: auto (all installed), none, or a list like speech,ocr"
    )
    p.add_argument(
        "--sandbox-answerer",
        choices=["auto", "extractive", "local", "endpoint"],
        help="who writes the embedded sandbox's answers (auto: a configured model, else extractive)",
    )
    p.add_argument("--sandbox-llm-model", help="GGUF chat model file for the local answerer (llm extra)")
    p.add_argument(
        "--sandbox-llm-url", help="OpenAI-compatible chat API for answers, e.g. http://127.0.0.1:11434/v1"
    )
    p.add_argument("--sandbox-llm-name", help="the model name sent to --sandbox-llm-url")
    p.add_argument(
        "--sandbox-llm-timeout", type=float, help="seconds a model may take per answer (default 30)"
    )
    p.add_argument(
        "--sandbox-stream-delay", type=float, help="seconds between an extractive answer's streamed deltas"
    )
    p.add_argument(
        "--auth-token", action="append", dest="auth_tokens", help="accepted bearer token (repeatable)"
    )
    p.add_argument(
        "--allowed-host", action="append", dest="allowed_hosts", help="allowed Host header (repeatable)"
    )
    p.add_argument(
        "--allowed-origin", action="append", dest="allowed_origins", help="allowed Origin (repeatable)"
    )
    p.add_argument(
        "--allow-dir", action="append", dest="allowed_dirs", help="folder local files may be read from"
    )
    p.add_argument(
        "--allow-write-dir",
        action="append",
        dest="allowed_write_dirs",
        help="folder export_clips may write MP4 files into (repeatable; turns the clips toolset on)",
    )
    p.add_argument("--toolsets", help=f"comma-separated, or 'all' (known: {', '.join(ALL_TOOLSETS)})")
    p.add_argument(
        "--read-only", action="store_true", default=None, help="hide every tool that changes anything"
    )
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (logs go to stderr)")
    oauth = p.add_argument_group("OAuth resource server (JWT access tokens; see README 'Remote deployment')")
    oauth.add_argument("--oauth-issuer", help="issuer URL the tokens' iss claim must equal")
    oauth.add_argument("--oauth-resource-url", help="this server's public /mcp URL (RFC 9728 resource)")
    oauth.add_argument(
        "--oauth-audience", action="append", help="accepted aud value (repeatable; default the resource URL)"
    )
    oauth.add_argument("--oauth-jwks", help="JWKS file path or https URL with the signing keys")
    oauth.add_argument(
        "--oauth-public-key-file", help="PEM public key (or certificate) tokens are signed with"
    )
    oauth.add_argument("--oauth-scopes", help="scopes every token must carry (comma- or space-separated)")
    jobs = p.add_argument_group("Jobs (work that outlasts a call; see README 'Progress, job handles…')")
    jobs.add_argument("--max-jobs", type=int, help="jobs kept at once, all clients together (default 200)")
    jobs.add_argument(
        "--max-jobs-per-client", type=int, help="jobs in progress per authenticated client (default 20)"
    )
    jobs.add_argument(
        "--job-lifetime-s", type=float, help="seconds after which a running job is given up (default 7200)"
    )
    jobs.add_argument(
        "--poll-initial-s", type=float, help="first gap between checks of upstream work (default 2)"
    )
    jobs.add_argument("--poll-max-s", type=float, help="longest gap backoff reaches (default 30)")
    jobs.add_argument(
        "--replica-timeout-s",
        type=float,
        help="with Redis: seconds without a heartbeat before a replica's jobs are lost (default 15)",
    )
    limits = p.add_argument_group("HTTP limits, per token unless said (see README 'Limits and metrics')")
    limits.add_argument("--log-format", choices=["text", "json"], help="stderr log lines: text or json")
    limits.add_argument("--max-body-bytes", type=int, help="largest request body read (default 1 MiB)")
    limits.add_argument("--max-argument-chars", type=int, help="longest string argument (default 65536)")
    limits.add_argument("--tool-concurrency", type=int, help="tool calls running at once (default 16)")
    limits.add_argument("--tool-calls-per-minute", type=int, help="tool calls started a minute (default 600)")
    limits.add_argument(
        "--upstream-concurrency", type=int, help="requests to TwelveLabs in flight at once (default 8)"
    )
    limits.add_argument(
        "--upstream-requests-per-minute", type=int, help="requests to TwelveLabs a minute (default 1200)"
    )
    limits.add_argument(
        "--tenant-keys",
        action="store_true",
        default=None,
        help="each request sends its own TwelveLabs key in X-TwelveLabs-Api-Key",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tl-mcp", description="TwelveLabs video understanding as an MCP server."
    )
    parser.add_argument("--version", action="version", version=f"tl-mcp {__version__}")
    sub = parser.add_subparsers(dest="command")
    _serve_flags(sub.add_parser("serve", help="run the MCP server (default)"))
    sb = sub.add_parser("sandbox", help="run the TwelveLabs-compatible sandbox API")
    sb.add_argument("--host", default="127.0.0.1")
    sb.add_argument("--port", type=int, default=8765)
    sb.add_argument("--data-dir", help="sandbox storage (default: TL_MCP_SANDBOX_DIR or the user data dir)")
    tools = sub.add_parser("tools", help="print the tool reference from the live schemas")
    tools.add_argument(
        "--update-readme", metavar="README", help="rewrite the tools block of this file instead"
    )
    from tl_mcp.demo_args import add_arguments as add_demo_arguments

    add_demo_arguments(sub.add_parser("demo", help="run the end-to-end demo against the embedded sandbox"))
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_sources(
        base_url=args.base_url,
        backend=args.backend,
        sandbox_dir=args.sandbox_dir,
        sandbox_analyzers=args.sandbox_analyzers,
        sandbox_answerer=args.sandbox_answerer,
        sandbox_llm_model=args.sandbox_llm_model,
        sandbox_llm_url=args.sandbox_llm_url,
        sandbox_llm_name=args.sandbox_llm_name,
        sandbox_llm_timeout_s=args.sandbox_llm_timeout,
        sandbox_stream_delay_s=args.sandbox_stream_delay,
        transport=args.transport,
        host=args.host,
        port=args.port,
        max_connections=args.max_connections,
        read_timeout_s=args.read_timeout,
        auth_tokens=args.auth_tokens,
        allowed_hosts=args.allowed_hosts,
        allowed_origins=args.allowed_origins,
        allowed_dirs=args.allowed_dirs,
        allowed_write_dirs=args.allowed_write_dirs,
        toolsets=args.toolsets,
        read_only=args.read_only,
        log_level=args.log_level,
        oauth_issuer=args.oauth_issuer,
        oauth_resource_url=args.oauth_resource_url,
        oauth_audience=args.oauth_audience,
        oauth_jwks=args.oauth_jwks,
        oauth_public_key_file=args.oauth_public_key_file,
        oauth_scopes=args.oauth_scopes,
        max_jobs=args.max_jobs,
        max_jobs_per_client=args.max_jobs_per_client,
        job_lifetime_s=args.job_lifetime_s,
        poll_initial_s=args.poll_initial_s,
        poll_max_s=args.poll_max_s,
        replica_timeout_s=args.replica_timeout_s,
        log_format=args.log_format,
        max_body_bytes=args.max_body_bytes,
        max_argument_chars=args.max_argument_chars,
        tool_concurrency=args.tool_concurrency,
        tool_calls_per_minute=args.tool_calls_per_minute,
        upstream_concurrency=args.upstream_concurrency,
        upstream_requests_per_minute=args.upstream_requests_per_minute,
        tenant_keys=args.tenant_keys,
    )


def _serve(args: argparse.Namespace) -> int:
    settings = _settings(args)
    _setup_logging(settings.log_level, settings.log_format)
    from tl_mcp.server import build_server, serve_http
    from tl_mcp.server.stdio import run_stdio

    closed = threading.Event()
    server = build_server(settings, on_closed=closed.set)
    log.info(
        "tl-mcp %s starting (%s transport, %s backend)",
        __version__,
        settings.transport,
        settings.effective_backend,
    )
    if settings.transport == "http":
        # uvicorn installs its own SIGINT/SIGTERM handlers and shuts down gracefully.
        anyio.run(serve_http, server, settings)
    else:
        anyio.run(_until_signalled, functools.partial(run_stdio, server), closed)
    return 0


#: After a signal, how long the lifespan may take to release everything before the process exits anyway.
SHUTDOWN_GRACE_S = 15.0


async def _until_signalled(run: Callable[[], Awaitable[None]], closed: threading.Event) -> None:
    """Run the stdio server until stdin closes or SIGTERM/SIGINT/SIGHUP arrives.

    A signal cancels the run, so the lifespan unwinds (jobs, embedded sandbox, API client). The SDK's
    stdin reader is a worker thread blocked in read(), which cancellation cannot interrupt, so once the
    lifespan has closed (or the grace period ran out) the process exits from a watchdog thread with
    status 0 instead of waiting for input that may never come.
    """
    async with anyio.create_task_group() as tg:

        async def watch() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
                async for signum in signals:
                    log.info("%s received: shutting down", signal.Signals(signum).name)
                    threading.Thread(target=_exit_when_closed, args=(closed,), daemon=True).start()
                    tg.cancel_scope.cancel()
                    return

        tg.start_soon(watch)
        await run()
        tg.cancel_scope.cancel()


def _exit_when_closed(closed: threading.Event) -> None:
    if not closed.wait(SHUTDOWN_GRACE_S):
        log.warning("shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_GRACE_S)
    logging.shutdown()
    os._exit(0)


def _sandbox(args: argparse.Namespace) -> int:
    _setup_logging("INFO")
    try:
        serve = importlib.import_module("tl_mcp.sandbox").serve
    except (ImportError, AttributeError) as exc:
        print(
            f"tl-mcp sandbox needs the sandbox extra: pip install 'tl-mcp[sandbox]' ({exc})", file=sys.stderr
        )
        return 2
    serve(args.host, args.port, Path(args.data_dir).expanduser() if args.data_dir else None)
    return 0


async def tool_reference() -> str:
    """The markdown tool table, straight from the schemas the server advertises."""
    from tl_mcp.server import build_server
    from tl_mcp.server.coverage import coverage_table
    from tl_mcp.server.registry import all_tools

    server = build_server(Settings.from_sources(env={}, toolsets="all"))
    # The declared flags, not the advertised annotations: those leave out what the spec implies.
    specs = {s.name: s for s in all_tools()}
    lines = [
        "| Toolset | Tool | What it does | Parameters (* required) | Hints |",
        "|---|---|---|---|---|",
    ]
    for tool in await server.list_tools():
        schema: dict[str, Any] = tool.input_schema or {}
        required = set(schema.get("required", []))
        params = ", ".join(f"`{n}`{'*' if n in required else ''}" for n in schema.get("properties", {}))
        spec = specs[tool.name]
        hints = ["read-only" if spec.read_only else "writes"]
        if spec.destructive:
            hints.append("destructive")
        if spec.idempotent:
            hints.append("idempotent")
        if spec.open_world:
            hints.append("open-world")
        summary = (tool.description or "").strip().split("\n\n")[0].replace("\n", " ").replace("|", "\\|")
        lines.append(f"| {spec.toolset} | `{tool.name}` | {summary} | {params or '—'} | {', '.join(hints)} |")
    lines += ["", "| Toolset | On by default | What it holds |", "|---|---|---|"]
    lines += [f"| {t.id} | {'yes' if t.default_on else 'no'} | {t.description} |" for t in TOOLSETS]
    lines.append("")
    off = [f"`{t.id}`" for t in TOOLSETS if not t.default_on and t.id != WRITE_TOOLSET]
    lines.append(
        f"The {', '.join(off[:-1])} and {off[-1]} toolsets are off unless enabled (`--toolsets all` or a "
        f"list naming them); `{WRITE_TOOLSET}` is on when a write folder is configured (`--allow-write-dir`) "
        "and `--toolsets` is not given."
    )
    lines += [
        "",
        "### Coverage",
        "",
        "What TwelveLabs offers (the API and the official TwelveLabs MCP server, by tool name) and where "
        "each capability is here, on the cloud and on the offline sandbox:",
        "",
    ]
    return "\n".join(lines) + "\n" + coverage_table()


def update_readme(path: Path, table: str) -> bool:
    """Rewrite the block between the markers; True when the file changed."""
    text = path.read_text("utf-8")
    start, end = text.find(TOOLS_START), text.find(TOOLS_END)
    if start < 0 or end < start:
        raise ConfigError(f"{path} has no {TOOLS_START} … {TOOLS_END} block to update")
    new = text[: start + len(TOOLS_START)] + "\n" + table + text[end:]
    if new != text:
        path.write_text(new, "utf-8")
    return new != text


def _tools(args: argparse.Namespace) -> int:
    _setup_logging("WARNING")
    table = anyio.run(tool_reference)
    if args.update_readme:
        changed = update_readme(Path(args.update_readme), table)
        print(f"{args.update_readme}: {'updated' if changed else 'already up to date'}", file=sys.stderr)
    else:
        sys.stdout.write(table)
    return 0


def _demo(argv: Sequence[str]) -> int:
    _setup_logging("INFO")
    try:
        demo_main = importlib.import_module("tl_mcp.demo").main
    except ImportError as exc:
        # The demo generates media with PyAV: it needs the sandbox extra.
        print(
            f"The demo needs the sandbox extra (missing module {exc.name!r}): pip install 'tl-mcp[sandbox]'",
            file=sys.stderr,
        )
        return 2
    result = demo_main(list(argv))
    return result if isinstance(result, int) else 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """`tl-mcp` alone, or with serve flags only, means `tl-mcp serve`."""
    args_list = list(argv)
    if not args_list or (args_list[0] not in COMMANDS and args_list[0] not in ("-h", "--help", "--version")):
        args_list.insert(0, "serve")
    return build_parser().parse_args(args_list)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    try:
        if raw[:1] == ["demo"]:
            # The demo owns its flags (`tl-mcp demo --help` is the demo's help).
            return _demo(raw[1:])
        args = parse_args(raw)
        handlers = {"serve": _serve, "sandbox": _sandbox, "tools": _tools}
        return handlers[args.command](args)
    except ConfigError as exc:
        print(f"tl-mcp: {exc}", file=sys.stderr)
        return 2
    except BaseExceptionGroup as group:
        # A bad setting found while starting the backend surfaces from inside the server's task groups.
        config_errors, _ = group.split(ConfigError)
        if config_errors is None:
            raise
        print(f"tl-mcp: {_first(config_errors)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _first(group: BaseExceptionGroup[ConfigError]) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


if __name__ == "__main__":
    sys.exit(main())
