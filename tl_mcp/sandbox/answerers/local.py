"""A GGUF chat model run in process with xllamacpp (llama.cpp); the ``llm`` extra. Nothing is downloaded:
the model is a file the operator points ``TL_MCP_SANDBOX_LLM_MODEL`` at."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tl_mcp.sandbox.answerers.base import JsonObj, Made, ModelDown

log = logging.getLogger(__name__)
_SERVERS: dict[str, Any] = {}
#: One generation at a time per model file, whichever LocalModel asks (the warm-up, the sandbox's answerer,
#: a second configuration of the same file): two would halve each other's speed on a small machine, and
#: batched together they decode differently from alone, which breaks "the same evidence, the same answer".
_BUSY: dict[str, threading.Lock] = {}
_LOAD = threading.Lock()
_END = object()


def xllamacpp_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("xllamacpp") is not None


class LocalModel:
    def __init__(self, path: Path, *, threads: int = 2, context: int = 4096) -> None:
        self.path = path
        self.made = Made("local", path.name)
        self._threads = threads
        self._context = context

    def _server(self) -> Any:
        with _LOAD:
            server = _SERVERS.get(str(self.path))
            if server is not None:
                return server
            if not self.path.is_file():
                raise ModelDown(
                    f"The local model file {self.path} does not exist. Point TL_MCP_SANDBOX_LLM_MODEL at a "
                    ".gguf file, or unset it for the extractive answerer."
                )
            try:
                import xllamacpp as xlc
            except ImportError:
                raise ModelDown(
                    "TL_MCP_SANDBOX_LLM_MODEL is set but xllamacpp is not installed: "
                    "pip install 'tl-mcp[llm]', or unset it for the extractive answerer."
                ) from None
            params = xlc.CommonParams()
            params.model.path = str(self.path)
            params.n_ctx = self._context
            params.cpuparams.n_threads = self._threads
            # Greedy decoding: the same evidence gives the same answer, which grounding checks rely on.
            params.sampling.temp = 0
            params.sampling.top_k = 1
            # llama.cpp logs every slot and token batch at its default level; only errors belong in ours.
            params.verbosity = 0
            try:
                server = xlc.Server(params)
            except Exception as exc:
                raise ModelDown(f"llama.cpp could not load {self.path.name}: {exc}") from exc
            _SERVERS[str(self.path)] = server
            _BUSY[str(self.path)] = threading.Lock()
            return server

    def warm(self, messages: list[dict[str, str]]) -> None:
        """Load the model and read ``messages`` (the fixed system prompt) once, before any question: the
        load (seconds) and that prompt's evaluation are then not in the first answer's time, as llama.cpp
        keeps the evaluated prefix for the prompts that start with it."""
        try:
            for _ in self.chat(messages, None, 1):
                pass
        except ModelDown as exc:
            # The first question falls back and says the same, in words its caller sees.
            log.warning("sandbox: the local model could not be warmed: %s", exc)

    def chat(self, messages: list[dict[str, str]], schema: JsonObj | None, max_tokens: int) -> Iterator[str]:
        server = self._server()
        busy = _BUSY[str(self.path)]
        request: JsonObj = {"messages": messages, "max_tokens": max_tokens, "stream": True}
        if schema is not None:
            request["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
        tokens: queue.Queue[object] = queue.Queue()
        stop = threading.Event()

        def on_chunk(chunk: Any) -> bool:
            for choice in chunk.get("choices", ()) if isinstance(chunk, dict) else ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    tokens.put(content)
            if isinstance(chunk, dict) and "error" in chunk:
                tokens.put(ModelDown(f"llama.cpp failed: {chunk['error']}"))
            return stop.is_set()  # True tells llama.cpp to stop generating

        def generate() -> None:
            try:
                with busy:
                    server.handle_chat_completions(request, on_chunk)
            except Exception as exc:  # surfaced to the reader, never lost in this thread
                tokens.put(ModelDown(f"llama.cpp failed: {exc}"))
            finally:
                tokens.put(_END)

        worker = threading.Thread(target=generate, name="tl-mcp-llm", daemon=True)
        worker.start()
        try:
            while (item := tokens.get()) is not _END:
                if isinstance(item, ModelDown):
                    raise item
                assert isinstance(item, str)
                yield item
        finally:
            stop.set()
            worker.join()
