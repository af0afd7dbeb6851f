"""Shared test fixtures (keep this small; areas keep their own fixtures in their folders)."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
