"""Three `tl-mcp serve --transport http` replicas behind HAProxy (deploy/haproxy.cfg), sharing Redis.

Everything goes through HAProxy, which names the replica that answered (`X-TL-MCP-Replica`) and
sends consecutive requests to consecutive replicas. The sandbox stalls every Jockey answer for a few
seconds (keepalives meanwhile), so an answer outlives the call that started it:
- an answer started on one replica with a short wait_s is finished by wait_for_task calls that the
  other replicas serve, and the progress they relayed, joined, is exactly the final text;
- continue_session works on every replica without knowledge_store_id;
- a cancel (2025-era notifications/cancelled) that HAProxy sends to another replica stops the call,
  and one that names calls on two replicas (one token, one request id) stops neither;
- callers waiting on one answer at once, on its replica and on the others, each get all of it;
- killing the replica that runs an answer makes wait_for_task report it lost, not hang;
- a call reaches one replica once: HAProxy does not send again one a replica took before dying, and
  sends one to a replica it does not know is gone on to another (the sandbox counts the answers asked).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.streamable_http import REQUEST_CANCELLED

from tests.e2e.processes import TL_MCP, free_port, running
from tests.server.conftest import ProgressRecorder, call_ok, seed_library, text_of
from tests.server.sse import HEADERS, events, rpc, tool_call
from tests.services import haproxy, redis_server
from tl_mcp.samples import make_sample_video

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

TOKEN = "lb-token-" + "q" * 24
SANDBOX_KEY = "k-lb-replicas-" + "w" * 12
STATE_KEYS = "c" * 40
#: Each Jockey answer thinks this long before it streams.
STALL_S = 2.0
#: A replica silent for this long is gone.
REPLICA_TIMEOUT_S = 3.0
REPLICA = "x-tl-mcp-replica"


@dataclass
class Cluster:
    url: str
    procs: dict[str, subprocess.Popen[bytes]]
    logs: dict[str, Path]
    library: dict[str, str]
    ports: dict[str, int]
    #: Where the sandbox, the replicas and HAProxy log.
    folder: Path


def _clean_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWELVELABS_", "TL_MCP_"))}
    env.update({"TL_MCP_SANDBOX_ANALYZERS": "none", "TL_MCP_SANDBOX_DIR": str(tmp / "unused")})
    return env


@asynccontextmanager
async def _client(url: str, served: list[tuple[str, str]]) -> AsyncIterator[Client]:
    """An MCP client through HAProxy; `served` gets (tool name, replica) for each tools/call answered."""

    async def seen(response: httpx2.Response) -> None:
        body = json.loads(response.request.content or b"{}")
        if body.get("method") == "tools/call":
            served.append((body["params"]["name"], response.headers.get(REPLICA, "?")))

    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60, event_hooks={"response": [seen]}
    )
    async with http, Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client:
        yield client


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    tmp = tmp_path_factory.mktemp("lb")
    media = tmp / "media"
    media.mkdir()
    video = make_sample_video(media / "clip.mp4", speech=False).path
    stall = {"kind": "stall", "path": "^/responses$", "methods": ["POST"], "latency_s": STALL_S}
    sandbox_env = {
        **_clean_env(tmp),
        "TL_MCP_SANDBOX_API_KEYS": SANDBOX_KEY,
        "TL_MCP_SANDBOX_FAULTS": json.dumps({"rules": [stall]}),
    }
    sb_port = free_port()
    base_url = f"http://127.0.0.1:{sb_port}/v1.3"
    with ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(tmp / "redis"))
        stack.enter_context(
            running(
                [str(TL_MCP), "sandbox", "--port", str(sb_port), "--data-dir", str(tmp / "sandbox")],
                sandbox_env,
                tmp / "sandbox.log",
                f"{base_url}/indexes",
                headers={"x-api-key": SANDBOX_KEY},
            )
        )
        env = {
            **_clean_env(tmp),
            "TWELVELABS_API_KEY": SANDBOX_KEY,
            "TL_MCP_STATE_KEYS": STATE_KEYS,
            "TL_MCP_AUTH_TOKENS": TOKEN,
            "TL_MCP_ALLOWED_DIRS": str(media),
            "TL_MCP_REDIS_URL": redis_url,
            "TL_MCP_REPLICA_TIMEOUT_S": str(REPLICA_TIMEOUT_S),
        }
        serve = [str(TL_MCP), "serve", "--transport", "http", "--backend", "sandbox", "--base-url", base_url]
        ports = {f"replica{i}": free_port() for i in (1, 2, 3)}
        procs: dict[str, subprocess.Popen[bytes]] = {}
        logs = {name: tmp / f"{name}.log" for name in ports}
        for name, port in ports.items():
            procs[name] = stack.enter_context(
                running([*serve, "--port", str(port)], env, logs[name], f"http://127.0.0.1:{port}/healthz")
            )
        url = stack.enter_context(haproxy(tmp, ports))

        async def seed() -> dict[str, str]:
            async with _client(url, []) as c:
                return await seed_library(c, video, "lb")

        library = anyio.run(seed)
        yield Cluster(url, procs, logs, library, ports, tmp)
        for log in logs.values():
            text = log.read_text()
            assert TOKEN not in text and SANDBOX_KEY not in text and STATE_KEYS not in text


async def test_an_answer_started_on_one_replica_is_finished_by_the_others(cluster: Cluster) -> None:
    served: list[tuple[str, str]] = []
    ks = cluster.library["knowledge_store_id"]
    async with _client(cluster.url, served) as c:
        with anyio.fail_after(60):
            relayed = ProgressRecorder()
            args = {"knowledge_store_id": ks, "input": "What happens in the video?", "wait_s": 1}
            started = await call_ok(c, "create_response", args, progress_callback=relayed)
            first = started.structured_content
            assert first and first["status"] == "in_progress", first
            job_id, origin = first["job_id"], served[-1][1]
            waited: dict[str, Any] = {}
            while not waited.get("done"):
                result = await call_ok(
                    c, "wait_for_task", {"id": job_id, "wait_s": 1}, progress_callback=relayed
                )
                waited = result.structured_content or {}
                assert waited["kind"] == "job:jockey", waited
        final = waited["result"]
        assert final["status"] == "completed" and final["text"], final
        assert relayed.text == final["text"]
        relayed.assert_increasing()
        waits = [replica for name, replica in served if name == "wait_for_task"]
        assert set(waits) - {origin}, f"every wait_for_task went to {origin}, which ran the answer"

        # A follow-up on each replica, none of which is told the knowledge store.
        session = final["session_id"]
        assert session
        answered: set[str] = set()
        with anyio.fail_after(60):
            for _ in range(3):
                follow = {"session_id": session, "input": "Tell me more.", "wait_s": 30}
                turn = (await call_ok(c, "continue_session", follow)).structured_content
                assert turn and turn["status"] == "completed" and turn["session_id"] == session, turn
                assert turn["knowledge_store_id"] == ks
                answered.add(served[-1][1])
        assert answered == set(cluster.procs), answered


async def test_polls_without_waiting_on_every_replica_relay_an_answer_to_its_end(cluster: Cluster) -> None:
    served: list[tuple[str, str]] = []
    ks = cluster.library["knowledge_store_id"]
    async with _client(cluster.url, served) as c:
        relayed = ProgressRecorder()
        with anyio.fail_after(60):
            args = {"knowledge_store_id": ks, "input": "Who is in the video?", "wait_s": 0}
            first = await call_ok(c, "create_response", args, progress_callback=relayed)
            started = first.structured_content
            assert started and started["status"] == "in_progress", started
            job_id = started["job_id"]
            while True:
                poll = {"id": job_id, "wait_s": 0}
                answer = await call_ok(c, "wait_for_task", poll, progress_callback=relayed)
                waited = answer.structured_content
                assert waited and waited["kind"] == "job:jockey", waited
                if waited["done"]:
                    break
                await anyio.sleep(0.05)
            told = served[-1][1]
            # HAProxy sends the next polls to the other replicas: told finished once, finished everywhere.
            for _ in range(2):
                again = (await call_ok(c, "wait_for_task", {"id": job_id, "wait_s": 0})).structured_content
                assert again and again["done"] and again["status"] == "completed", (served[-1], again)
                assert again["result"]["text"] == waited["result"]["text"]
        assert {replica for _, replica in served[-2:]} | {told} == set(cluster.procs)
        final = waited["result"]
        assert final["status"] == "completed" and final["text"], final
        # Every poll relayed from where the one before stopped, whichever replica it reached.
        assert relayed.text == final["text"]


async def test_an_answer_told_finished_on_its_replica_is_finished_on_the_others_at_once(
    cluster: Cluster,
) -> None:
    served: list[tuple[str, str]] = []
    ks = cluster.library["knowledge_store_id"]
    async with AsyncExitStack() as stack:
        c = await stack.enter_async_context(_client(cluster.url, served))
        # Connected beforehand, so the reads below follow the answer by milliseconds.
        direct = {
            name: await stack.enter_async_context(_client(f"http://127.0.0.1:{port}", []))
            for name, port in cluster.ports.items()
        }
        with anyio.fail_after(60):
            args = {"knowledge_store_id": ks, "input": "Describe the video.", "wait_s": 0}
            started = (await call_ok(c, "create_response", args)).structured_content
            assert started and started["status"] == "in_progress", started
            job_id, origin = started["job_id"], served[-1][1]
            told = (
                await call_ok(direct[origin], "wait_for_task", {"id": job_id, "wait_s": 60})
            ).structured_content
            assert told and told["done"] and told["status"] == "completed", told
            for name in set(direct) - {origin}:
                again = await call_ok(direct[name], "wait_for_task", {"id": job_id, "wait_s": 0})
                polled = again.structured_content
                assert polled and polled["done"] and polled["status"] == "completed", (name, polled)
                assert polled["result"]["text"] == told["result"]["text"]


async def test_a_cancel_that_reaches_another_replica_stops_the_call(cluster: Cluster) -> None:
    ks = cluster.library["knowledge_store_id"]
    own = {**HEADERS, "authorization": f"Bearer {TOKEN}", "mcp-protocol-version": "2025-11-25"}
    body = tool_call(41, "create_response", {"knowledge_store_id": ks, "input": "Stop me.", "wait_s": 60})
    cancel = rpc("notifications/cancelled", {"requestId": 41, "reason": "test"})
    seen: list[dict[str, Any]] = []
    async with httpx2.AsyncClient(timeout=60) as http:
        with anyio.fail_after(30):
            async with http.stream("POST", f"{cluster.url}/mcp", json=body, headers=own) as response:
                assert response.status_code == 200
                origin = response.headers[REPLICA]
                # The call is in the sandbox's think time: cancel it through HAProxy.
                await anyio.sleep(0.5)
                started = time.monotonic()
                accepted = await http.post(f"{cluster.url}/mcp", json=cancel, headers=own)
                assert accepted.status_code == 202
                assert accepted.headers[REPLICA] != origin, "HAProxy sent the cancel to the call's replica"
                async for event in events(response):
                    if event.message is not None:
                        seen.append(event.message)
        # The stream ends with the cancellation, well before the answer would have come.
        logs = "".join(p.read_text() for p in cluster.logs.values())
        assert seen[-1] == {
            "jsonrpc": "2.0",
            "id": 41,
            "error": {"code": REQUEST_CANCELLED, "message": "Request cancelled by the client"},
        }, logs
        assert not any("result" in m for m in seen)
        assert time.monotonic() - started < STALL_S
    receiver = cluster.logs[accepted.headers[REPLICA]].read_text()
    assert "passing it to the other replicas" in receiver, receiver
    assert "reached another replica" in cluster.logs[origin].read_text()


async def test_a_cancel_naming_calls_on_two_replicas_cancels_neither(cluster: Cluster) -> None:
    ks = cluster.library["knowledge_store_id"]
    own = {**HEADERS, "authorization": f"Bearer {TOKEN}", "mcp-protocol-version": "2025-11-25"}
    # Two clients sharing one token both use request id 77: a cancel cannot tell which one it means.
    body = tool_call(77, "create_response", {"knowledge_store_id": ks, "input": "Which one?", "wait_s": 60})
    cancel = rpc("notifications/cancelled", {"requestId": 77, "reason": "test"})
    endings: list[dict[str, Any]] = []
    async with httpx2.AsyncClient(timeout=60) as http, AsyncExitStack() as stack:
        responses = [
            await stack.enter_async_context(http.stream("POST", f"{cluster.url}/mcp", json=body, headers=own))
            for _ in range(2)
        ]
        assert responses[0].headers[REPLICA] != responses[1].headers[REPLICA]
        await anyio.sleep(0.5)
        accepted = await http.post(f"{cluster.url}/mcp", json=cancel, headers=own)
        assert accepted.status_code == 202

        async def read(response: httpx2.Response) -> None:
            async for event in events(response):
                if event.message is not None and "id" in event.message:
                    endings.append(event.message)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for response in responses:
                    tg.start_soon(read, response)
    assert len(endings) == 2 and all(
        e["result"]["structuredContent"]["status"] == "completed" for e in endings
    )
    assert "cancelling none of them" in cluster.logs[accepted.headers[REPLICA]].read_text()


async def test_one_job_waited_on_from_every_replica_at_once_reaches_each_caller_whole(
    cluster: Cluster,
) -> None:
    """Callers of one token (agents sharing it) wait on one job at the same moment, two on the replica
    that runs it and one on each other replica: each needs the whole answer, so each relay goes on
    from the cursor it found, and each one's progress joined is the final text, once."""
    served: list[tuple[str, str]] = []
    ks = cluster.library["knowledge_store_id"]
    async with AsyncExitStack() as stack:
        c = await stack.enter_async_context(_client(cluster.url, served))
        direct = {
            name: await stack.enter_async_context(_client(f"http://127.0.0.1:{port}", []))
            for name, port in cluster.ports.items()
        }
        with anyio.fail_after(60):
            args = {"knowledge_store_id": ks, "input": "Who waits?", "wait_s": 0}
            started = (await call_ok(c, "create_response", args)).structured_content
            assert started and started["status"] == "in_progress", started
            job_id, origin = started["job_id"], served[-1][1]
            callers = [(origin, 1), (origin, 2)] + [(name, 1) for name in sorted(set(direct) - {origin})]
            relayed = {caller: ProgressRecorder() for caller in callers}
            waited: dict[tuple[str, int], dict[str, Any]] = {}

            async def wait(caller: tuple[str, int]) -> None:
                args = {"id": job_id, "wait_s": 30}
                answer = await call_ok(
                    direct[caller[0]], "wait_for_task", args, progress_callback=relayed[caller]
                )
                waited[caller] = answer.structured_content or {}

            async with anyio.create_task_group() as tg:
                for caller in callers:
                    tg.start_soon(wait, caller)
    final = waited[callers[0]]["result"]
    assert final["status"] == "completed" and final["text"], final
    for caller in callers:
        assert waited[caller]["done"] and waited[caller]["result"]["text"] == final["text"], waited[caller]
        assert relayed[caller].text == final["text"], (caller, relayed[caller].calls)
        relayed[caller].assert_increasing()


async def test_killing_the_replica_that_runs_an_answer_is_reported_as_lost(cluster: Cluster) -> None:
    served: list[tuple[str, str]] = []
    ks = cluster.library["knowledge_store_id"]
    async with _client(cluster.url, served) as c:
        args = {"knowledge_store_id": ks, "input": "Will this survive?", "wait_s": 0.5}
        started = (await call_ok(c, "create_response", args)).structured_content
        assert started and started["status"] == "in_progress", started
        origin = served[-1][1]
        cluster.procs[origin].send_signal(signal.SIGKILL)
        cluster.procs[origin].wait(10)
        killed = time.monotonic()
        with anyio.fail_after(30):
            lost = await c.call_tool("wait_for_task", {"id": started["job_id"], "wait_s": 60})
        assert time.monotonic() - killed < REPLICA_TIMEOUT_S + 5
        assert served[-1][1] != origin
    text = text_of(lost)
    assert lost.is_error, text
    assert "was running on another replica of this server, which stopped" in text
    assert "continue_session" in text or "create_response" in text


def _answers_asked(cluster: Cluster) -> int:
    """How many Jockey answers the sandbox was asked for (its stall rule fires on each and logs it)."""
    return (cluster.folder / "sandbox.log").read_text().count("fault injection on POST /responses")


async def _logged(cluster: Cluster, probe: str) -> tuple[str, str]:
    """HAProxy's (termination state, retries) for the request to /mcp?probe=`probe`: "SD--" when the
    server went away mid-answer, "----" when it ended well; "0" retries, or "+1" when it was sent again
    to another server. HAProxy logs a request once it is over, which may be just after its caller read
    the answer."""
    lines: list[str] = []
    with anyio.move_on_after(5):
        while not lines:
            log = (cluster.folder / "haproxy.log").read_text()
            lines = [line for line in log.splitlines() if f"/mcp?probe={probe} " in line]
            await anyio.sleep(0.05)
    assert len(lines) == 1, (probe, lines)
    found = re.search(r" ([-A-Za-z]{4}) \d+/\d+/\d+/\d+/(\+?\d+) ", lines[0])
    assert found, lines[0]
    return found.group(1), found.group(2)


async def _answer(
    http: httpx2.AsyncClient, url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[str, dict[str, Any]]:
    """(the replica that answered, the JSON-RPC answer) of one raw call."""
    async with http.stream("POST", url, json=body, headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        async for event in events(response):
            if event.message is not None and event.message.get("id") == body["id"]:
                return response.headers[REPLICA], event.message
    raise AssertionError(f"no answer to {body}")


async def test_a_call_reaches_one_replica_once_whatever_haproxy_retries(cluster: Cluster) -> None:
    """HAProxy (deploy/haproxy.cfg: retries, redispatch) retries only a connection that failed, so each
    call starts its work upstream once: one that reached a replica which then died is not sent again
    (its caller gets no answer, not a second one), and one that HAProxy sends to a replica it does not
    yet know is gone goes to another replica, once, and its progress is relayed once.

    Run last: it kills a replica (the test before may have killed another)."""
    ks = cluster.library["knowledge_store_id"]
    own = {**HEADERS, "authorization": f"Bearer {TOKEN}", "mcp-protocol-version": "2025-11-25"}
    asked = _answers_asked(cluster)
    async with httpx2.AsyncClient(timeout=30) as http:
        with anyio.fail_after(20):
            body = tool_call(
                51, "create_response", {"knowledge_store_id": ks, "input": "Once.", "wait_s": 60}
            )
            seen: list[dict[str, Any]] = []
            async with http.stream(
                "POST", f"{cluster.url}/mcp?probe=arrived", json=body, headers=own
            ) as response:
                origin = response.headers[REPLICA]
                # Until the replica has asked upstream for the answer (another process's log: polled).
                while _answers_asked(cluster) == asked:  # noqa: ASYNC110
                    await anyio.sleep(0.05)
                cluster.procs[origin].send_signal(signal.SIGKILL)
                cluster.procs[origin].wait(10)
                with contextlib.suppress(httpx2.HTTPError):
                    async for event in events(response):
                        if event.message is not None:
                            seen.append(event.message)
            assert not any("result" in m for m in seen), seen

            # HAProxy counts the dead replica up until two checks 1 s apart fail: of calls sent at once,
            # one per server it counts up, the one sent there is refused and goes to another replica.
            up = [name for name, proc in cluster.procs.items() if proc.poll() is None] + [origin]
            calls = [
                tool_call(
                    60 + i, "create_response", {"knowledge_store_id": ks, "input": f"{i}?", "wait_s": 0}
                )
                for i in range(len(up))
            ]
            answers: dict[int, tuple[str, dict[str, Any]]] = {}

            async def send(i: int) -> None:
                answers[i] = await _answer(http, f"{cluster.url}/mcp?probe=refused-{i}", calls[i], own)

            async with anyio.create_task_group() as tg:
                for i in range(len(calls)):
                    tg.start_soon(send, i)
    assert all(replica != origin for replica, _ in answers.values()), answers
    assert await _logged(cluster, "arrived") == ("SD--", "0")
    assert sorted([await _logged(cluster, f"refused-{i}") for i in range(len(calls))]) == [
        ("----", "+1"),
        *[("----", "0")] * (len(calls) - 1),
    ]
    job_ids = [answer["result"]["structuredContent"]["job_id"] for _, answer in answers.values()]

    served: list[tuple[str, str]] = []
    relayed = {job_id: ProgressRecorder() for job_id in job_ids}
    waited: dict[str, dict[str, Any]] = {}
    async with _client(cluster.url, served) as c:

        async def follow(job_id: str) -> None:
            args = {"id": job_id, "wait_s": 30}
            answer = await call_ok(c, "wait_for_task", args, progress_callback=relayed[job_id])
            waited[job_id] = answer.structured_content or {}

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for job_id in job_ids:
                    tg.start_soon(follow, job_id)
    for job_id in job_ids:
        final = waited[job_id]["result"]
        assert waited[job_id]["done"] and final["status"] == "completed", waited[job_id]
        assert relayed[job_id].text == final["text"], relayed[job_id].calls
    # The cut-off call's answer and each redispatched one's were asked for once; following asked none.
    assert _answers_asked(cluster) == asked + 1 + len(calls)
