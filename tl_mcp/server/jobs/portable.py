"""Portable job ids, and the job kinds a replica that never saw a job can pick up from one.

When a job's remaining work is only watching upstream handles (an indexed asset, a store item, an
embedding task), its id carries those handles, signed with an HMAC under the shared state keys
(`job_<kind>:<field>:….<signature>`). The job's progress declares the handles (`JobProgress.handles`);
a replica that never saw the job rebuilds it from the id through the `JobKinds` table the server
wires in (`app.py`), and polls upstream, so `wait_for_task` works on any replica behind a load balancer.

An upload's remaining work after its handles exist, and a video-embedding task, are only polling
TwelveLabs. Jockey answers and streamed analyses live in one HTTP stream held by one process: another
replica cannot pick them up, and their entry in the table says so.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Generic, TypeVar

from mcp.server.mcpserver.exceptions import ToolError

from tl_mcp.server.jobs.job import Resumed

S = TypeVar("S")

#: Tool arguments of type Id accept at most this many characters.
MAX_JOB_ID = 200
_FIELD = re.compile(r"^[A-Za-z0-9_.-]*$")
_SIG_BYTES = 12


class JobIds:
    """Mints and checks portable job ids; `keys[0]` signs, every key verifies (rotation)."""

    def __init__(self, keys: Sequence[bytes], *, scope: str) -> None:
        if not keys:
            raise ValueError("JobIds needs at least one key")
        # A key of its own, so a job id never doubles as anything sealed with the raw state keys.
        self._keys = [hmac.new(k, b"tl-mcp/job-id/v1", hashlib.sha256).digest() for k in keys]
        # Bound to the backend: an id minted against one API must not be polled against another.
        self._scope = scope.encode()

    def _sign(self, key: bytes, body: str, owner: str) -> str:
        material = b"\0".join((self._scope, owner.encode(), body.encode()))
        digest = hmac.new(key, material, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:_SIG_BYTES]).decode().rstrip("=")

    def mint(self, code: str, fields: Sequence[str], owner: str) -> str | None:
        """The signed id (good for `owner` only), or None when a field cannot be carried or it is too long."""
        if not all(_FIELD.match(f) for f in (code, *fields)):
            return None
        body = f"job_{code}:" + ":".join(fields)
        job_id = f"{body}.{self._sign(self._keys[0], body, owner)}"
        return job_id if len(job_id) <= MAX_JOB_ID else None

    def open(self, job_id: str, owner: str) -> tuple[str, list[str]] | None:
        """(kind code, fields) of `owner`'s portable id; None for a process-local id; else ToolError.

        An id issued to another principal fails like an altered one, so it tells nothing about its job.
        """
        if not job_id.startswith("job_") or ":" not in job_id:
            return None
        body, dot, sig = job_id.rpartition(".")
        valid = False
        for key in self._keys:
            valid |= bool(dot) and hmac.compare_digest(sig.encode(), self._sign(key, body, owner).encode())
        if not valid:
            raise ToolError(
                f"Job id {job_id[:40]}… is not valid here: its signature does not match. It was changed "
                "after it was issued, it was issued to another client (job ids are good only with the "
                "credentials that started the job), or by a server with different TL_MCP_STATE_KEYS "
                "or a different TwelveLabs backend (without state keys, each process signs with its own "
                "key). Pass the job_id exactly as returned; on several replicas set the same "
                "TL_MCP_STATE_KEYS everywhere. Otherwise start the work again."
            )
        code, _, rest = body.removeprefix("job_").partition(":")
        return code, rest.split(":")


#: Rebuilds one kind of job from (the server state's getter, job id, the id's fields); ToolError when it
#: cannot move. A getter, so a kind that never moves can say so even before the server has its state.
Resume = Callable[[Callable[[], S], str, list[str]], Resumed]


class JobKinds(Generic[S]):
    """The manager's `JobPorter`: kind codes → how to resume them; `bind` the server state once it exists."""

    def __init__(self, table: Mapping[str, Resume[S]]) -> None:
        self._table = dict(table)
        self._state: S | None = None

    def bind(self, state: S) -> None:
        self._state = state

    def resume(self, job_id: str, code: str, fields: list[str]) -> Resumed:
        resume = self._table.get(code)
        if resume is None:
            raise unknown_kind(job_id)
        return resume(self._bound, job_id, fields)

    def _bound(self) -> S:
        if self._state is None:
            raise ToolError("The server is still starting; call wait_for_task again in a moment.")
        return self._state


def unknown_kind(job_id: str) -> ToolError:
    """The error for a portable id whose kind (or whose fields for its kind) this version does not know."""
    return ToolError(
        f"Job id {job_id[:40]}… names a kind of job this server version does not know. "
        "Are the replicas running different tl-mcp versions? Start the work again."
    )
