"""Settings: environment, flags winning over it, validation messages, and secret hygiene."""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_mcp.config import ConfigError, Settings
from tl_mcp.toolsets import ALL_TOOLSETS, DEFAULT_TOOLSETS


def test_defaults_without_environment() -> None:
    s = Settings.from_sources({})
    assert s.api_key is None
    assert s.effective_backend == "sandbox"
    assert s.transport == "stdio"
    assert (s.host, s.port) == ("127.0.0.1", 8000)
    assert s.toolsets == DEFAULT_TOOLSETS
    assert "admin" not in s.toolsets
    assert s.allowed_dirs == ()
    assert not s.read_only


def test_auto_backend_is_cloud_when_a_key_is_set() -> None:
    s = Settings.from_sources({"TWELVELABS_API_KEY": "tlk_secret"})
    assert s.effective_backend == "cloud"
    forced = Settings.from_sources({"TWELVELABS_API_KEY": "tlk_secret", "TL_MCP_BACKEND": "sandbox"})
    assert forced.effective_backend == "sandbox"


def test_flags_win_over_environment(tmp_path: Path) -> None:
    srv_a, srv_b = tmp_path / "srv-a", tmp_path / "srv-b"
    srv_a.mkdir()
    srv_b.mkdir()
    env = {
        "TL_MCP_TRANSPORT": "stdio",
        "TL_MCP_PORT": "9000",
        "TL_MCP_ALLOWED_DIRS": f"{srv_a},{srv_b}",
        "TL_MCP_TOOLSETS": "search",
        "TL_MCP_READ_ONLY": "true",
    }
    s = Settings.from_sources(
        env,
        transport="http",
        port=9100,
        allowed_dirs=[tmp_path],
        toolsets=["jockey", "admin"],
        read_only=False,
    )
    assert s.transport == "http"
    assert s.port == 9100
    assert s.allowed_dirs == (tmp_path,)
    assert s.toolsets == ("jockey", "admin")
    assert s.read_only is False
    from_env = Settings.from_sources(env)
    assert from_env.allowed_dirs == (srv_a, srv_b)
    assert from_env.read_only is True and from_env.port == 9000


def test_all_toolsets_keyword() -> None:
    assert Settings.from_sources({"TL_MCP_TOOLSETS": "all"}).toolsets == ALL_TOOLSETS


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"TL_MCP_TOOLSETS": "search,bogus"}, "unknown toolset(s) bogus"),
        ({"TL_MCP_BACKEND": "local"}, "TL_MCP_BACKEND"),
        ({"TL_MCP_TRANSPORT": "sse"}, "TL_MCP_TRANSPORT"),
        ({"TL_MCP_PORT": "70000"}, "TL_MCP_PORT"),
        ({"TL_MCP_MAX_JOBS": "0"}, "TL_MCP_MAX_JOBS"),
        ({"TL_MCP_JOB_LIFETIME_S": "soon"}, "TL_MCP_JOB_LIFETIME_S"),
        ({"TL_MCP_POLL_INITIAL_S": "60"}, "TL_MCP_POLL_INITIAL_S (60) is longer than TL_MCP_POLL_MAX_S (30)"),
        ({"TL_MCP_MAX_JOBS_PER_CLIENT": "500"}, "TL_MCP_MAX_JOBS_PER_CLIENT (500) is above TL_MCP_MAX_JOBS"),
    ],
)
def test_bad_values_name_the_setting(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_sources(env)
    assert fragment in str(info.value)


def test_secrets_never_show_in_repr_or_errors() -> None:
    key, token = "tlk_TOPSECRET_1234", "bearer-TOPSECRET-5678"
    s = Settings.from_sources({"TWELVELABS_API_KEY": key, "TL_MCP_AUTH_TOKENS": token})
    for text in (repr(s), str(s), s.model_dump_json()):
        assert key not in text and token not in text
    assert s.api_key is not None and s.api_key.get_secret_value() == key
    # A secret pasted into the wrong variable must not be echoed back in the error.
    with pytest.raises(ConfigError) as info:
        Settings.from_sources({"TL_MCP_BACKEND": key})
    assert key not in str(info.value)


@pytest.mark.parametrize(
    ("tokens", "fragment"),
    [
        ([""], "empty or only whitespace"),
        (["   "], "empty or only whitespace"),
        (["good-token-0123456789", ""], "token number 2 is empty"),
        (["short-token"], "shorter than 16 characters"),
        (["has a space in it 0123"], "whitespace or control characters"),
    ],
)
def test_unusable_auth_tokens_are_refused_without_echoing_them(tokens: list[str], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_sources({}, auth_tokens=tokens)
    message = str(info.value)
    assert fragment in message and "--auth-token" in message and "secrets.token_urlsafe" in message
    assert all(t not in message for t in tokens if t.strip())


@pytest.mark.parametrize("raw", ["", " ", " , ,", "\n"])
def test_a_set_but_blank_token_variable_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="set but holds no token"):
        Settings.from_sources({"TL_MCP_AUTH_TOKENS": raw})


def test_usable_tokens_are_kept_and_an_unset_variable_means_no_tokens() -> None:
    token = "t" * 16
    kept = Settings.from_sources({"TL_MCP_AUTH_TOKENS": token}).auth_tokens
    assert [t.get_secret_value() for t in kept] == [token]
    assert Settings.from_sources({}).auth_tokens == ()


@pytest.mark.parametrize(
    ("folder", "fragment"),
    [
        ("", "empty folder name would allow the current directory"),
        ("   ", "empty folder name"),
        ("/", "root of the file system"),
        ("/..", "root of the file system"),
        ("media", "is relative"),
        ("./media", "is relative"),
        ("/nonexistent-tl-mcp-folder", "does not exist"),
        ("/etc/passwd", "is not a folder"),
    ],
)
def test_unusable_allowed_folders_are_refused(folder: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="--allow-dir") as info:
        Settings.from_sources({}, allowed_dirs=[folder])
    assert fragment in str(info.value)
    if folder.strip():
        with pytest.raises(ConfigError, match=fragment):
            Settings.from_sources({"TL_MCP_ALLOWED_DIRS": folder})


def test_a_redis_url_that_is_not_one_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_sources(env={"TL_MCP_REDIS_URL": "http://:s3cret-pw@cache:6379"})
    message = str(refused.value)
    assert "TL_MCP_REDIS_URL" in message and "redis://" in message and "s3cret" not in message
    ok = Settings.from_sources(env={"TL_MCP_REDIS_URL": "rediss://:s3cret-pw@cache:6380/2"})
    assert ok.redis_url is not None and "s3cret" not in repr(ok)


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis://:s3cret-pw@cache:notaport/0", "host or port"),
        ("redis://:s3cret-pw@cache:99999/0", "host or port"),
        ("redis://:s3cret-pw@[::1:6379/0", "host or port"),
        ("rediss://:s3cret-pw@cache:6379/zero", "database"),
    ],
)
def test_a_redis_url_that_does_not_parse_is_refused_without_echoing_it(url: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as refused:
        Settings.from_sources(env={"TL_MCP_REDIS_URL": url})
    message = str(refused.value)
    assert "TL_MCP_REDIS_URL" in message and fragment in message and "percent-encoded" in message
    assert "s3cret" not in message
