"""An OpenAI-compatible chat endpoint (Ollama, llama.cpp's server, LM Studio, vLLM), streamed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx2 as httpx

from tl_mcp.sandbox.answerers.base import JsonObj, Made, ModelDown


def _where(url: str) -> str:
    # Only scheme, host and port: a URL may carry credentials, and they never go into errors or results.
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


class EndpointModel:
    def __init__(self, url: str, model: str, *, timeout_s: float) -> None:
        self.url = url.rstrip("/")
        self.model = model
        self.timeout_s = timeout_s
        self.made = Made("endpoint", f"{model} at {_where(url)}")

    def chat(self, messages: list[dict[str, str]], schema: JsonObj | None, max_tokens: int) -> Iterator[str]:
        body: JsonObj = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": 0,
            "stream": True,
        }
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "answer", "schema": schema, "strict": True},
            }
        where = _where(self.url)
        deadline = time.monotonic() + self.timeout_s
        timeout = httpx.Timeout(self.timeout_s, connect=min(5.0, self.timeout_s))
        finished = False
        try:
            with (
                httpx.Client(timeout=timeout, trust_env=False) as client,
                client.stream("POST", f"{self.url}/chat/completions", json=body) as response,
            ):
                if response.status_code != 200:
                    detail = " ".join(response.read().decode("utf-8", "replace").split())[:200]
                    raise ModelDown(
                        f"The answer endpoint {where} replied HTTP {response.status_code} ({detail}). Check "
                        "TL_MCP_SANDBOX_LLM_URL and TL_MCP_SANDBOX_LLM_NAME (the model it serves)."
                    )
                for line in response.iter_lines():
                    if time.monotonic() > deadline:
                        raise ModelDown(
                            f"The answer endpoint {where} took longer than {self.timeout_s:g} s "
                            "(TL_MCP_SANDBOX_LLM_TIMEOUT_S)."
                        )
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        chunk = json.loads(data)
                        content = (
                            chunk["choices"][0].get("delta", {}).get("content") if chunk["choices"] else None
                        )
                        # A number or list where the text goes is not a token to check and stream.
                        if content is not None and not isinstance(content, str):
                            raise TypeError(content)
                    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                        raise ModelDown(
                            f"The answer endpoint {where} sent a stream line that is not an OpenAI chat "
                            f"chunk: {data[:80]!r}."
                        ) from None
                    if content:
                        yield content
                    if chunk["choices"] and chunk["choices"][0].get("finish_reason"):
                        finished = True
                if not finished:
                    # A body that just ends is how a server that died mid-answer looks over HTTP/1.0 (or
                    # through a proxy): what came so far is not the whole answer.
                    raise ModelDown(
                        f"The answer endpoint {where} closed the stream mid-answer (no finish_reason and no "
                        "[DONE]): it stopped or crashed. Check that it is still running."
                    )
        except httpx.TimeoutException:
            raise ModelDown(
                f"The answer endpoint {where} did not answer within {self.timeout_s:g} s "
                "(TL_MCP_SANDBOX_LLM_TIMEOUT_S)."
            ) from None
        except httpx.HTTPError as exc:
            raise ModelDown(
                f"The answer endpoint {where} is not reachable ({type(exc).__name__}). Start it (for "
                "example `ollama serve`), or unset TL_MCP_SANDBOX_LLM_URL for the extractive answerer."
            ) from None
