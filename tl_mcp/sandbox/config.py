"""Sandbox configuration: where state lives, which API keys are accepted, size caps, analyzer selection and
fault injection. Everything can come from the environment (``SandboxConfig.from_env``) or be built in code."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

ALLOW_PRIVATE_URLS_ENV = "TL_MCP_SANDBOX_ALLOW_PRIVATE_URLS"
MAX_DURATION_ENV = "TL_MCP_SANDBOX_MAX_DURATION_S"
MAX_PIXELS_ENV = "TL_MCP_SANDBOX_MAX_PIXELS"
MAX_FRAMES_ENV = "TL_MCP_SANDBOX_MAX_FRAMES"
MAX_DECODE_MEMORY_ENV = "TL_MCP_SANDBOX_MAX_DECODE_MEMORY_BYTES"
ANSWERER_ENV = "TL_MCP_SANDBOX_ANSWERER"
LLM_MODEL_ENV = "TL_MCP_SANDBOX_LLM_MODEL"
LLM_URL_ENV = "TL_MCP_SANDBOX_LLM_URL"
LLM_NAME_ENV = "TL_MCP_SANDBOX_LLM_NAME"
LLM_TIMEOUT_ENV = "TL_MCP_SANDBOX_LLM_TIMEOUT_S"
STREAM_DELAY_ENV = "TL_MCP_SANDBOX_STREAM_DELAY_S"

#: ``(host, port) -> addresses`` for outbound URL fetches; raises ``OSError`` when the host does not resolve.
Resolver = Callable[[str, int], Sequence[str]]

FaultKind = Literal[
    "latency", "rate_limit", "server_error", "drop", "truncate_stream", "malformed_json", "stall"
]


class FaultRule(BaseModel):
    """One injected failure. It fires on matching requests either every ``every_nth`` match (deterministic,
    counted per rule) or with ``probability`` (seeded by ``FaultConfig.seed``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    #: Regular expression searched in the request path (after /v1.3); empty matches every path.
    path: str = ""
    methods: tuple[str, ...] = ()
    every_nth: int | None = Field(default=None, ge=1)
    probability: float | None = Field(default=None, ge=0.0, le=1.0)
    #: Stop firing after this many times (None = no limit).
    max_times: int | None = Field(default=None, ge=1)
    #: For latency: the pause before serving. For stall: the pause inside the handler, after the response
    #: started (a `/responses` stream keeps sending keepalive events meanwhile).
    latency_s: float = Field(default=0.5, ge=0.0, le=60.0)
    retry_after_s: int = Field(default=1, ge=0)
    status: int = Field(default=500, ge=500, le=599)
    #: For truncate_stream: body chunks (events / NDJSON lines) passed through before the cut.
    #: For malformed_json on a streamed body: the zero-based chunk whose JSON is broken.
    after_chunks: int = Field(default=1, ge=0)

    @field_validator("path")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"fault path {value!r} is not a valid regular expression: {exc}") from exc
        return value


class FaultConfig(BaseModel):
    """Off unless rules are given. Read from ``TL_MCP_SANDBOX_FAULTS`` (JSON object with a ``rules`` list)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rules: tuple[FaultRule, ...] = ()
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.rules)

    @classmethod
    def from_json(cls, raw: str) -> FaultConfig:
        try:
            return cls.model_validate_json(raw)
        except ValidationError as exc:
            raise ValueError(
                f"TL_MCP_SANDBOX_FAULTS is not a valid fault configuration: {exc.errors()[0]['msg']} "
                '(expected JSON like {"rules": [{"kind": "rate_limit", "every_nth": 3}]})'
            ) from exc


class SandboxConfig(BaseModel):
    """Never log ``api_keys``."""

    # A refused value is never echoed: a model URL may carry credentials, a key may sit in a wrong field.
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    data_dir: Path
    #: Accepted x-api-key values; empty means any non-empty key (local development).
    api_keys: tuple[SecretStr, ...] = ()
    faults: FaultConfig = FaultConfig()
    #: Analyzer selection passed to ``load_analyzers``: "auto", "none" or a comma list.
    analyzers: str = "auto"
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    max_url_bytes: int = Field(default=4 * 1024 * 1024 * 1024, ge=1)
    max_image_bytes: int = Field(default=32 * 1024 * 1024, ge=1)
    #: Largest JSON request body; bigger ones are cut off while streaming with a 413.
    max_json_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: Longest a URL fetch may take, in seconds.
    url_timeout_s: float = Field(default=120.0, gt=0)
    #: Longest segment the ingest cuts, in seconds.
    max_segment_s: float = Field(default=10.0, gt=0)
    min_video_s: float = Field(default=4.0, ge=0)
    multipart_chunk_size: int = Field(default=8 * 1024 * 1024, ge=1024)
    search_page_ttl_s: float = Field(default=3600.0, gt=0)
    #: Seconds of silence on a `/responses` stream before a `keepalive` event (SDK 1.3.6: about 10 s).
    keepalive_interval_s: float = Field(default=10.0, gt=0)
    #: Base URL clients use to reach this sandbox (for thumbnail and upload URLs). None = from each request.
    public_url: str | None = None
    #: Whether caller-supplied URLs may resolve to loopback/private/link-local/... addresses (off: a sandbox
    #: reachable by others must not fetch from its own network). Unset, ``TL_MCP_SANDBOX_ALLOW_PRIVATE_URLS``
    #: decides, so the embedded sandbox honours it too.
    allow_private_urls: bool = Field(default_factory=lambda: _env_flag(ALLOW_PRIVATE_URLS_ENV))
    #: Name resolution for caller-supplied URLs (``(host, port) -> addresses``); None = the system resolver.
    #: Lets a test or an embedding application decide what a host name means without touching DNS.
    resolver: Resolver | None = Field(default=None, exclude=True, repr=False)
    #: `tl-mcp sandbox`: most connections open at once, and the seconds request headers may take and a
    #: body may stall (see tl_mcp.http_guard).
    max_connections: int = Field(default=500, ge=1)
    read_timeout_s: float = Field(default=15.0, gt=0)
    #: How long a multipart upload session accepts chunks, in seconds (the platform: 24 h).
    multipart_session_ttl_s: float = Field(default=24 * 3600.0, gt=0)
    # What one media file may make the sandbox decode (see ``media.MediaLimits``). Unset, the environment
    # decides, so the embedded sandbox honours these too.
    #: Longest media in seconds, by its header and by the packets it really holds.
    max_duration_s: float = Field(
        default_factory=lambda: _env_number(MAX_DURATION_ENV, 4 * 3600.0), gt=0, validate_default=True
    )
    #: Largest picture (width x height) of a video frame or an image; 8K UHD by default.
    max_pixels: int = Field(
        default_factory=lambda: int(_env_number(MAX_PIXELS_ENV, 7680 * 4320)), ge=1, validate_default=True
    )
    #: Most video frames (and subtitle cues) one file may hold.
    max_frames: int = Field(
        default_factory=lambda: int(_env_number(MAX_FRAMES_ENV, 1_000_000)), ge=1, validate_default=True
    )
    #: Most the process may grow during one decode pass before the pass is given up.
    max_decode_memory_bytes: int = Field(
        default_factory=lambda: int(_env_number(MAX_DECODE_MEMORY_ENV, 2 * 1024**3)),
        ge=16 * 1024 * 1024,
        validate_default=True,
    )

    # Who writes answers (see ``sandbox.answerers``). Unset, the environment decides, so the embedded
    # sandbox honours these too.
    #: "auto" (an endpoint when a URL is set, else a local model when one is set and xllamacpp is
    #: installed, else extractive), "extractive", "local" or "endpoint".
    answerer: Literal["auto", "extractive", "local", "endpoint"] = Field(
        default_factory=lambda: os.environ.get(ANSWERER_ENV, "").strip() or "auto", validate_default=True
    )
    #: A GGUF chat model file for the local answerer; never downloaded.
    llm_model: Path | None = Field(
        default_factory=lambda: (
            Path(v).expanduser() if (v := os.environ.get(LLM_MODEL_ENV, "").strip()) else None
        )
    )
    #: Base URL of an OpenAI-compatible API (``…/v1``: Ollama, llama.cpp's server, LM Studio, vLLM).
    llm_url: str | None = Field(default_factory=lambda: os.environ.get(LLM_URL_ENV, "").strip() or None)
    #: The model name sent to that endpoint.
    llm_name: str = Field(default_factory=lambda: os.environ.get(LLM_NAME_ENV, "").strip() or "default")
    #: Longest a model may take for one answer before the extractive answer is given instead.
    llm_timeout_s: float = Field(
        default_factory=lambda: _env_number(LLM_TIMEOUT_ENV, 30.0), gt=0, validate_default=True
    )
    #: Pause between streamed deltas of an extractive answer, so it arrives as a model's would.
    stream_delay_s: float = Field(
        default_factory=lambda: _env_number(STREAM_DELAY_ENV, 0.0), ge=0, le=2, validate_default=True
    )

    @field_validator("llm_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError(
                f"{LLM_URL_ENV} must be an http(s) URL such as http://127.0.0.1:11434/v1 (the value set is "
                "not repeated: it may carry credentials)"
            )
        return value

    @classmethod
    def from_env(cls, data_dir: Path | None = None, **overrides: object) -> SandboxConfig:
        env = os.environ
        keys = tuple(
            SecretStr(k.strip()) for k in env.get("TL_MCP_SANDBOX_API_KEYS", "").split(",") if k.strip()
        )
        values: dict[str, object] = {
            "data_dir": data_dir or Path(env.get("TL_MCP_SANDBOX_DIR") or _default_dir()),
            "api_keys": keys,
            "analyzers": env.get("TL_MCP_SANDBOX_ANALYZERS", "auto"),
        }
        if env.get("TL_MCP_SANDBOX_FAULTS"):
            values["faults"] = FaultConfig.from_json(env["TL_MCP_SANDBOX_FAULTS"])
        if env.get("TL_MCP_SANDBOX_PUBLIC_URL"):
            values["public_url"] = env["TL_MCP_SANDBOX_PUBLIC_URL"]
        if env.get("TL_MCP_SANDBOX_KEEPALIVE_S"):
            values["keepalive_interval_s"] = float(env["TL_MCP_SANDBOX_KEEPALIVE_S"])
        if env.get("TL_MCP_SANDBOX_MAX_UPLOAD_BYTES"):
            values["max_upload_bytes"] = int(env["TL_MCP_SANDBOX_MAX_UPLOAD_BYTES"])
        if env.get("TL_MCP_SANDBOX_MAX_JSON_BYTES"):
            values["max_json_bytes"] = int(env["TL_MCP_SANDBOX_MAX_JSON_BYTES"])
        if env.get("TL_MCP_SANDBOX_MAX_CONNECTIONS"):
            values["max_connections"] = int(env["TL_MCP_SANDBOX_MAX_CONNECTIONS"])
        if env.get("TL_MCP_SANDBOX_READ_TIMEOUT_S"):
            values["read_timeout_s"] = float(env["TL_MCP_SANDBOX_READ_TIMEOUT_S"])
        values.update(overrides)
        return cls.model_validate(values)

    def key_accepted(self, key: str) -> bool:
        if not key:
            return False
        if not self.api_keys:
            return True
        return any(_const_eq(key, k.get_secret_value()) for k in self.api_keys)


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number (got {raw[:40]!r}); unset it for the default") from None


def _env_path(name: str) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser() if raw else None


def _const_eq(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def _default_dir() -> Path:
    from tl_mcp.config import default_sandbox_dir

    return default_sandbox_dir()
