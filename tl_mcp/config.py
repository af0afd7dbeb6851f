"""One Settings object for the whole process: environment variables, overridden by command-line flags.

Every name here is listed in DESIGN.md §2 and in the README's config table; a test checks that the
README and this module agree.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import platformdirs
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from tl_mcp.toolsets import ALL_TOOLSETS, DEFAULT_TOOLSETS, WRITE_TOOLSET

DEFAULT_BASE_URL = "https://api.twelvelabs.io/v1.3"

#: The API a running server talks to; defined here once, used by every result's `backend` field.
BackendKind = Literal["cloud", "sandbox"]
#: The setting: `auto` chooses a kind (see `Settings.effective_backend`).
Backend = Literal["auto", "cloud", "sandbox"]
Transport = Literal["stdio", "http"]

LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS: tuple[str, ...] = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")

#: Shortest bearer token accepted: anything shorter can be guessed over the network.
MIN_TOKEN_CHARS = 16
_TOKEN_HINT = 'generate one with python -c "import secrets; print(secrets.token_urlsafe(32))"'


class ConfigError(ValueError):
    """A setting has a value we cannot use; the message names the setting and what to do."""


def _split_list(raw: str | None) -> list[str]:
    if not raw:
        return []
    return [part.strip() for part in raw.replace("\n", ",").split(",") if part.strip()]


def _truthy(raw: str | None) -> bool:
    return (raw or "").strip().lower() in {"1", "true", "yes", "on"}


def default_sandbox_dir() -> Path:
    return Path(platformdirs.user_data_dir("tl-mcp", appauthor=False)) / "sandbox"


class Settings(BaseModel):
    """Resolved configuration. Build it with :meth:`from_sources`; never log `api_key` or `auth_tokens`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: SecretStr | None = None
    base_url: str = DEFAULT_BASE_URL
    backend: Backend = "auto"
    sandbox_dir: Path = Field(default_factory=default_sandbox_dir)
    #: What the embedded sandbox understands: "auto" (every analyzer installed), "none", or a comma list
    #: such as "speech,ocr"; the sandbox checks the names when it starts.
    sandbox_analyzers: str = "auto"
    #: Who writes the embedded sandbox's answers: "auto" (an endpoint when a URL is set, else a local model
    #: when one is set and xllamacpp is installed, else extractive), "extractive", "local" or "endpoint".
    sandbox_answerer: Literal["auto", "extractive", "local", "endpoint"] = "auto"
    #: A GGUF chat model file for the local answerer (the `llm` extra); never downloaded.
    sandbox_llm_model: Path | None = None
    #: An OpenAI-compatible chat API (`…/v1`: Ollama, llama.cpp's server, LM Studio, vLLM).
    sandbox_llm_url: str | None = None
    #: The model name sent to that endpoint.
    sandbox_llm_name: str = "default"
    #: Longest a model may take for one answer before the extractive one is given instead.
    sandbox_llm_timeout_s: float = Field(default=30.0, gt=0)
    #: Pause between streamed deltas of an extractive answer (0: as fast as they go).
    sandbox_stream_delay_s: float = Field(default=0.0, ge=0, le=2)
    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    #: HTTP: most connections open at once (lowered to fit the open-file limit); see tl_mcp.http_guard.
    max_connections: int = Field(default=500, ge=1)
    #: HTTP: seconds a request's headers may take, and its body may stall.
    read_timeout_s: float = Field(default=15.0, gt=0)
    auth_tokens: tuple[SecretStr, ...] = ()
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    allowed_origins: tuple[str, ...] = LOOPBACK_ORIGINS
    allowed_dirs: tuple[Path, ...] = ()
    #: Folders export_clips may write into; none by default (the `clips` toolset is then off).
    allowed_write_dirs: tuple[Path, ...] = ()
    toolsets: tuple[str, ...] = DEFAULT_TOOLSETS
    read_only: bool = False
    log_level: str = "INFO"
    #: "json": one JSON object per log line on stderr (for log collectors); "text" for people.
    log_format: Literal["text", "json"] = "text"
    #: HTTP: the largest request body read, and the longest string any tool argument may be.
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_argument_chars: int = Field(default=65_536, ge=256)
    #: HTTP, per token: tool calls running at once and started per minute, and the same for the
    #: requests they send to TwelveLabs (0 turns that limit off).
    tool_concurrency: int = Field(default=16, ge=0)
    tool_calls_per_minute: int = Field(default=600, ge=0)
    upstream_concurrency: int = Field(default=8, ge=0)
    upstream_requests_per_minute: int = Field(default=1200, ge=0)
    #: HTTP: each request brings its own TwelveLabs key in X-TwelveLabs-Api-Key (see server/tenants.py).
    tenant_keys: bool = False
    #: Shared secrets for MRTR request state and portable job ids; the same on every replica.
    state_keys: tuple[SecretStr, ...] = ()
    oauth_issuer: str | None = None
    oauth_resource_url: str | None = None
    oauth_audience: tuple[str, ...] = ()
    oauth_jwks: str | None = None
    oauth_public_key_file: Path | None = None
    oauth_scopes: tuple[str, ...] = ()
    #: Jobs the server keeps at once (finished ones are dropped first), and in progress per client.
    max_jobs: int = Field(default=200, ge=1)
    max_jobs_per_client: int = Field(default=20, ge=1)
    #: A job still running after this many seconds is given up (status "expired").
    job_lifetime_s: float = Field(default=7200.0, gt=0)
    #: Watching upstream work: the first gap between two checks, and the longest one backoff reaches.
    poll_initial_s: float = Field(default=2.0, gt=0)
    poll_max_s: float = Field(default=30.0, gt=0)
    #: Replicas share jobs, Jockey sessions and cancels in this Redis (a URL: it may hold a password).
    redis_url: SecretStr | None = None
    #: A replica whose heartbeat is older than this is gone: the others call its running jobs lost.
    replica_timeout_s: float = Field(default=15.0, ge=1.0, le=600.0)

    @model_validator(mode="after")
    def _consistent_bounds(self) -> Settings:
        if self.poll_initial_s > self.poll_max_s:
            raise ValueError(
                f"TL_MCP_POLL_INITIAL_S ({self.poll_initial_s:g}) is longer than TL_MCP_POLL_MAX_S "
                f"({self.poll_max_s:g}); the first gap between checks cannot exceed the longest"
            )
        if self.max_jobs_per_client > self.max_jobs:
            raise ValueError(
                f"TL_MCP_MAX_JOBS_PER_CLIENT ({self.max_jobs_per_client}) is above TL_MCP_MAX_JOBS "
                f"({self.max_jobs}); lower it, or raise TL_MCP_MAX_JOBS"
            )
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return value
        url = value.get_secret_value()
        # The value itself is never echoed: it may hold the Redis password.
        shape = (
            "redis://[:password@]host:port/db, rediss:// for TLS, or unix:///path/to/redis.sock"
            " (a password with @ : / or % in it is percent-encoded)"
        )
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"it must be a Redis URL: {shape}")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises for a port that is not a number in 0-65535
        except ValueError:
            raise ValueError(f"its host or port does not parse; the shape is {shape}") from None
        db = parts.path.strip("/") if parts.scheme != "unix" else ""
        if db and not db.isdigit():
            raise ValueError(f"its database (the path after the port) must be a number; the shape is {shape}")
        return value

    @field_validator("state_keys")
    @classmethod
    def _long_state_keys(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        short = [i + 1 for i, key in enumerate(value) if len(key.get_secret_value().encode()) < 32]
        if short:
            raise ValueError(
                f"key(s) number {', '.join(map(str, short))} are shorter than 32 bytes; generate each "
                'with python -c "import secrets; print(secrets.token_hex(32))" and use the same list '
                "on every replica"
            )
        return value

    @field_validator("sandbox_llm_url")
    @classmethod
    def _llm_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            # Not repeated in the error: a model URL may carry credentials.
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:11434/v1")
        return value

    @field_validator("auth_tokens")
    @classmethod
    def _usable_tokens(cls, value: tuple[SecretStr, ...]) -> tuple[SecretStr, ...]:
        # An empty token would match `Authorization: Bearer ` and so turn authentication off.
        problems = []
        for i, token in enumerate(value, 1):
            raw = token.get_secret_value()
            if not raw.strip():
                problems.append(f"token number {i} is empty or only whitespace")
            elif any(c.isspace() or not c.isprintable() for c in raw):
                problems.append(f"token number {i} contains whitespace or control characters")
            elif len(raw) < MIN_TOKEN_CHARS:
                problems.append(f"token number {i} is shorter than {MIN_TOKEN_CHARS} characters")
        if problems:
            raise ValueError(f"{'; '.join(problems)}; {_TOKEN_HINT}")
        return value

    @field_validator("allowed_dirs", "allowed_write_dirs")
    @classmethod
    def _usable_dirs(cls, value: tuple[Path, ...]) -> tuple[Path, ...]:
        for d in value:
            if not d.is_absolute():
                raise ValueError(
                    f"{str(d)!r} is relative; give the absolute path of the folder (a relative one would "
                    "depend on the directory the server happens to start in)"
                )
            try:
                resolved = d.resolve(strict=True)
            except (OSError, RuntimeError):
                raise ValueError(f"{str(d)!r} does not exist; create it first or fix the path") from None
            if not resolved.is_dir():
                raise ValueError(f"{str(d)!r} is not a folder; give the folder that holds the media files")
            if resolved.parent == resolved:
                raise ValueError(
                    f"{str(d)!r} is the root of the file system, which would let tools read every file "
                    "the server can (keys, /etc, other users' data); allow only the folders with the media"
                )
        return value

    @property
    def oauth_enabled(self) -> bool:
        """Any OAuth setting turns the JWT resource-server mode on (and then all of it must be given)."""
        return any(
            (
                self.oauth_issuer,
                self.oauth_resource_url,
                self.oauth_audience,
                self.oauth_jwks,
                self.oauth_public_key_file,
                self.oauth_scopes,
            )
        )

    @field_validator("toolsets")
    @classmethod
    def _known_toolsets(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in ALL_TOOLSETS]
        if unknown:
            raise ValueError(
                f"unknown toolset(s) {', '.join(unknown)}; choose from {', '.join(ALL_TOOLSETS)} "
                "(TL_MCP_TOOLSETS / --toolsets, comma-separated, or 'all')"
            )
        return value

    @property
    def effective_backend(self) -> BackendKind:
        """`auto` means the cloud when a key is set, otherwise the embedded sandbox."""
        if self.backend == "auto":
            return "cloud" if self.api_key is not None else "sandbox"
        return self.backend

    @classmethod
    def from_sources(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        base_url: str | None = None,
        backend: str | None = None,
        sandbox_dir: str | Path | None = None,
        sandbox_analyzers: str | None = None,
        sandbox_answerer: str | None = None,
        sandbox_llm_model: str | Path | None = None,
        sandbox_llm_url: str | None = None,
        sandbox_llm_name: str | None = None,
        sandbox_llm_timeout_s: float | None = None,
        sandbox_stream_delay_s: float | None = None,
        transport: str | None = None,
        host: str | None = None,
        port: int | None = None,
        max_connections: int | None = None,
        read_timeout_s: float | None = None,
        auth_tokens: Sequence[str] | None = None,
        allowed_hosts: Sequence[str] | None = None,
        allowed_origins: Sequence[str] | None = None,
        allowed_dirs: Sequence[str | Path] | None = None,
        allowed_write_dirs: Sequence[str | Path] | None = None,
        toolsets: Sequence[str] | str | None = None,
        read_only: bool | None = None,
        log_level: str | None = None,
        oauth_issuer: str | None = None,
        oauth_resource_url: str | None = None,
        oauth_audience: Sequence[str] | None = None,
        oauth_jwks: str | None = None,
        oauth_public_key_file: str | Path | None = None,
        oauth_scopes: Sequence[str] | str | None = None,
        log_format: str | None = None,
        max_body_bytes: int | None = None,
        max_argument_chars: int | None = None,
        tool_concurrency: int | None = None,
        tool_calls_per_minute: int | None = None,
        upstream_concurrency: int | None = None,
        upstream_requests_per_minute: int | None = None,
        tenant_keys: bool | None = None,
        max_jobs: int | None = None,
        max_jobs_per_client: int | None = None,
        job_lifetime_s: float | None = None,
        poll_initial_s: float | None = None,
        poll_max_s: float | None = None,
        replica_timeout_s: float | None = None,
    ) -> Settings:
        """Environment first, then flags (a flag given as anything but None wins)."""
        env = os.environ if env is None else env

        def pick(flag: object, name: str) -> object:
            return flag if flag is not None else env.get(name) or None

        key = env.get("TWELVELABS_API_KEY", "").strip()
        env_tokens = env.get("TL_MCP_AUTH_TOKENS")
        if not auth_tokens and env_tokens is not None and not _split_list(env_tokens):
            # Typically `TL_MCP_AUTH_TOKENS=$TOKEN` with TOKEN unset: running without auth is not what
            # the operator asked for.
            raise ConfigError(
                "invalid setting TL_MCP_AUTH_TOKENS: it is set but holds no token (empty, or only spaces and "
                "commas), which would turn bearer-token authentication off. Put the token(s) in it "
                f"(comma-separated, at least {MIN_TOKEN_CHARS} characters each), or unset it to run "
                "without tokens."
            )
        tokens = list(auth_tokens) if auth_tokens else _split_list(env_tokens)
        hosts = list(allowed_hosts) if allowed_hosts else _split_list(env.get("TL_MCP_ALLOWED_HOSTS"))
        origins = list(allowed_origins) if allowed_origins else _split_list(env.get("TL_MCP_ALLOWED_ORIGINS"))
        dirs = list(allowed_dirs) if allowed_dirs else _split_list(env.get("TL_MCP_ALLOWED_DIRS"))
        write_dirs = (
            list(allowed_write_dirs)
            if allowed_write_dirs
            else _split_list(env.get("TL_MCP_ALLOWED_WRITE_DIRS"))
        )
        for folders, source in ((dirs, "allowed_dirs"), (write_dirs, "allowed_write_dirs")):
            if any(not str(d).strip() for d in folders):
                # Path("") is ".", the directory the server was started in (with cwd "/", everything).
                raise ConfigError(
                    f"invalid setting {_FIELD_SOURCES[source]}: an empty folder name would allow the "
                    "current directory; give the absolute path of each folder to allow"
                )
        raw_sets: Sequence[str] | str | None = toolsets
        if raw_sets is None:
            raw_sets = env.get("TL_MCP_TOOLSETS") or None
        if isinstance(raw_sets, str):
            raw_sets = _split_list(raw_sets)
        if raw_sets is not None and any(s == "all" for s in raw_sets):
            raw_sets = ALL_TOOLSETS
        if raw_sets is None and write_dirs:
            # Configuring a write folder is asking for the tool that writes there.
            raw_sets = (*DEFAULT_TOOLSETS, WRITE_TOOLSET)
        values: dict[str, object] = {
            "api_key": SecretStr(key) if key else None,
            "base_url": pick(base_url, "TWELVELABS_BASE_URL") or DEFAULT_BASE_URL,
            "backend": pick(backend, "TL_MCP_BACKEND") or "auto",
            "sandbox_analyzers": pick(sandbox_analyzers, "TL_MCP_SANDBOX_ANALYZERS") or "auto",
            "sandbox_answerer": pick(sandbox_answerer, "TL_MCP_SANDBOX_ANSWERER") or "auto",
            "sandbox_llm_url": pick(sandbox_llm_url, "TL_MCP_SANDBOX_LLM_URL") or None,
            "sandbox_llm_name": pick(sandbox_llm_name, "TL_MCP_SANDBOX_LLM_NAME") or "default",
            "transport": pick(transport, "TL_MCP_TRANSPORT") or "stdio",
            "host": pick(host, "TL_MCP_HOST") or "127.0.0.1",
            "port": pick(port, "TL_MCP_PORT") or 8000,
            "max_connections": pick(max_connections, "TL_MCP_MAX_CONNECTIONS") or 500,
            "read_timeout_s": pick(read_timeout_s, "TL_MCP_READ_TIMEOUT_S") or 15.0,
            "auth_tokens": tuple(SecretStr(t) for t in tokens),
            "allowed_dirs": tuple(Path(d).expanduser() for d in dirs),
            "allowed_write_dirs": tuple(Path(d).expanduser() for d in write_dirs),
            "read_only": read_only if read_only is not None else _truthy(env.get("TL_MCP_READ_ONLY")),
            "tenant_keys": tenant_keys if tenant_keys is not None else _truthy(env.get("TL_MCP_TENANT_KEYS")),
            "log_level": (pick(log_level, "TL_MCP_LOG_LEVEL") or "INFO"),
            "state_keys": tuple(SecretStr(k) for k in _split_list(env.get("TL_MCP_STATE_KEYS"))),
            "oauth_issuer": pick(oauth_issuer, "TL_MCP_OAUTH_ISSUER"),
            "oauth_resource_url": pick(oauth_resource_url, "TL_MCP_OAUTH_RESOURCE_URL"),
            "oauth_audience": tuple(
                list(oauth_audience) if oauth_audience else _split_list(env.get("TL_MCP_OAUTH_AUDIENCE"))
            ),
            "oauth_jwks": pick(oauth_jwks, "TL_MCP_OAUTH_JWKS"),
        }
        for field, given, variable in (
            ("log_format", log_format, "TL_MCP_LOG_FORMAT"),
            ("max_body_bytes", max_body_bytes, "TL_MCP_MAX_BODY_BYTES"),
            ("max_argument_chars", max_argument_chars, "TL_MCP_MAX_ARGUMENT_CHARS"),
            ("tool_concurrency", tool_concurrency, "TL_MCP_TOOL_CONCURRENCY"),
            ("tool_calls_per_minute", tool_calls_per_minute, "TL_MCP_TOOL_CALLS_PER_MINUTE"),
            ("upstream_concurrency", upstream_concurrency, "TL_MCP_UPSTREAM_CONCURRENCY"),
            (
                "upstream_requests_per_minute",
                upstream_requests_per_minute,
                "TL_MCP_UPSTREAM_REQUESTS_PER_MINUTE",
            ),
        ):
            chosen = pick(given, variable)
            if chosen is not None:
                values[field] = chosen
        for name, flag, variable in (
            ("sandbox_llm_timeout_s", sandbox_llm_timeout_s, "TL_MCP_SANDBOX_LLM_TIMEOUT_S"),
            ("sandbox_stream_delay_s", sandbox_stream_delay_s, "TL_MCP_SANDBOX_STREAM_DELAY_S"),
            ("max_jobs", max_jobs, "TL_MCP_MAX_JOBS"),
            ("max_jobs_per_client", max_jobs_per_client, "TL_MCP_MAX_JOBS_PER_CLIENT"),
            ("job_lifetime_s", job_lifetime_s, "TL_MCP_JOB_LIFETIME_S"),
            ("poll_initial_s", poll_initial_s, "TL_MCP_POLL_INITIAL_S"),
            ("poll_max_s", poll_max_s, "TL_MCP_POLL_MAX_S"),
            ("replica_timeout_s", replica_timeout_s, "TL_MCP_REPLICA_TIMEOUT_S"),
        ):
            value = pick(flag, variable)
            if value is not None:
                values[name] = value
        redis_url = env.get("TL_MCP_REDIS_URL", "").strip()
        if redis_url:
            values["redis_url"] = SecretStr(redis_url)
        key_file = pick(oauth_public_key_file, "TL_MCP_OAUTH_PUBLIC_KEY_FILE")
        if key_file:
            values["oauth_public_key_file"] = Path(str(key_file)).expanduser()
        raw_scopes = oauth_scopes if oauth_scopes is not None else env.get("TL_MCP_OAUTH_SCOPES")
        if isinstance(raw_scopes, str):
            raw_scopes = _split_list(raw_scopes.replace(" ", ","))
        values["oauth_scopes"] = tuple(raw_scopes or ())
        model = pick(sandbox_llm_model, "TL_MCP_SANDBOX_LLM_MODEL")
        if model:
            values["sandbox_llm_model"] = Path(str(model)).expanduser()
        sdir = pick(sandbox_dir, "TL_MCP_SANDBOX_DIR")
        if sdir:
            values["sandbox_dir"] = Path(str(sdir)).expanduser()
        if hosts:
            values["allowed_hosts"] = tuple(hosts)
        if origins:
            values["allowed_origins"] = tuple(origins)
        if raw_sets is not None:
            values["toolsets"] = tuple(raw_sets)
        try:
            return cls.model_validate(values)
        except ValueError as exc:  # pydantic.ValidationError is a ValueError
            raise ConfigError(_explain(exc)) from None


_FIELD_SOURCES = {
    "base_url": "TWELVELABS_BASE_URL / --base-url",
    "backend": "TL_MCP_BACKEND / --backend (auto, cloud or sandbox)",
    "sandbox_analyzers": "TL_MCP_SANDBOX_ANALYZERS / --sandbox-analyzers",
    "sandbox_answerer": "TL_MCP_SANDBOX_ANSWERER / --sandbox-answerer (auto, extractive, local or endpoint)",
    "sandbox_llm_url": "TL_MCP_SANDBOX_LLM_URL / --sandbox-llm-url",
    "sandbox_llm_timeout_s": "TL_MCP_SANDBOX_LLM_TIMEOUT_S / --sandbox-llm-timeout (seconds, more than 0)",
    "sandbox_stream_delay_s": "TL_MCP_SANDBOX_STREAM_DELAY_S / --sandbox-stream-delay (seconds, 0 to 2)",
    "transport": "TL_MCP_TRANSPORT / --transport (stdio or http)",
    "port": "TL_MCP_PORT / --port (0-65535)",
    "max_connections": "TL_MCP_MAX_CONNECTIONS / --max-connections (1 or more)",
    "read_timeout_s": "TL_MCP_READ_TIMEOUT_S / --read-timeout (seconds, more than 0)",
    "toolsets": "TL_MCP_TOOLSETS / --toolsets",
    "host": "TL_MCP_HOST / --host",
    "state_keys": "TL_MCP_STATE_KEYS",
    "auth_tokens": "TL_MCP_AUTH_TOKENS / --auth-token",
    "allowed_dirs": "TL_MCP_ALLOWED_DIRS / --allow-dir",
    "allowed_write_dirs": "TL_MCP_ALLOWED_WRITE_DIRS / --allow-write-dir",
    "oauth_issuer": "TL_MCP_OAUTH_ISSUER / --oauth-issuer",
    "oauth_resource_url": "TL_MCP_OAUTH_RESOURCE_URL / --oauth-resource-url",
    "oauth_audience": "TL_MCP_OAUTH_AUDIENCE / --oauth-audience",
    "oauth_jwks": "TL_MCP_OAUTH_JWKS / --oauth-jwks",
    "oauth_public_key_file": "TL_MCP_OAUTH_PUBLIC_KEY_FILE / --oauth-public-key-file",
    "oauth_scopes": "TL_MCP_OAUTH_SCOPES / --oauth-scopes",
    "log_format": "TL_MCP_LOG_FORMAT / --log-format (text or json)",
    "tenant_keys": "TL_MCP_TENANT_KEYS / --tenant-keys",
    "max_body_bytes": "TL_MCP_MAX_BODY_BYTES / --max-body-bytes (1024 or more)",
    "max_argument_chars": "TL_MCP_MAX_ARGUMENT_CHARS / --max-argument-chars (256 or more)",
    "tool_concurrency": "TL_MCP_TOOL_CONCURRENCY / --tool-concurrency (0 or more; 0 is no limit)",
    "tool_calls_per_minute": "TL_MCP_TOOL_CALLS_PER_MINUTE / --tool-calls-per-minute (0 is no limit)",
    "upstream_concurrency": "TL_MCP_UPSTREAM_CONCURRENCY / --upstream-concurrency (0 is no limit)",
    "upstream_requests_per_minute": (
        "TL_MCP_UPSTREAM_REQUESTS_PER_MINUTE / --upstream-requests-per-minute (0 is no limit)"
    ),
    "max_jobs": "TL_MCP_MAX_JOBS / --max-jobs",
    "max_jobs_per_client": "TL_MCP_MAX_JOBS_PER_CLIENT / --max-jobs-per-client",
    "job_lifetime_s": "TL_MCP_JOB_LIFETIME_S / --job-lifetime-s",
    "poll_initial_s": "TL_MCP_POLL_INITIAL_S / --poll-initial-s",
    "poll_max_s": "TL_MCP_POLL_MAX_S / --poll-max-s",
    "redis_url": "TL_MCP_REDIS_URL",
    "replica_timeout_s": "TL_MCP_REPLICA_TIMEOUT_S / --replica-timeout-s (seconds, 1 to 600)",
}


def _explain(exc: ValueError) -> str:
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return str(exc)
    lines = []
    for err in exc.errors():
        if not err["loc"]:
            # A check across settings: its message names each of them.
            lines.append(f"invalid settings: {err['msg'].removeprefix('Value error, ')}")
            continue
        field = str(err["loc"][0])
        source = _FIELD_SOURCES.get(field, field)
        # Never echo the input: it could be a secret pasted into the wrong variable.
        lines.append(f"invalid setting {source}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(lines)
