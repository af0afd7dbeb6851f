"""The browser tests reuse the server tests' world: one embedded sandbox with one indexed sample video."""

from tests.server.conftest import world  # noqa: F401 — a fixture, used by name
