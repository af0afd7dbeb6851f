"""The bulk-ingest ledger (`ingest_ledger.IngestLedger`) in Redis, so every replica sees the same
uploads by content, registrations and bulk plans (with `TL_MCP_REDIS_URL`; else the SQLite file).

Keys, under the same `tl-mcp:<backend hash>:` prefix as the rest of the shared state, each kept
`KEEP_FINISHED_S` (30 days) after its last write:
- `ingest:upload:<content key>` (hash: state, asset_id, filename, and runner, lease_until while one
  process sends it) and `ingest:sending:<runner>` (set: the upload keys that runner renews);
- `ingest:reg:<asset id>` (hash: destination → the id it made, "" while only intended; and
  `<destination>|runner`, `<destination>|lease_until` while one process registers it);
- `ingest:plan:<plan id>` (hash: owner, spec, finished, runner, job_id, lease_until) and
  `ingest:plan:<plan id>:files` (hash: position → the file as JSON).
Each write sets its key's TTL in the same step (MULTI/EXEC or one script), and a write to an entry
that must exist checks it in that step too, so no cut-off or racing write leaves a key that never
expires. A claim is taken with WATCH/MULTI (its holder's liveness is the caller's to judge), its
lease in Redis's clock (the replicas' clocks may differ); renewing and releasing check the runner in
one script. The interface is synchronous, like the SQLite ledger's: each call is one short round trip.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, WatchError
from redis.retry import Retry

from tl_mcp.server.ingest_ledger import KEEP_FINISHED_S, Plan, PlanFile, Upload, UploadState
from tl_mcp.server.shared.redis_state import RECONNECTS, unreachable, where_of

_TTL_MS = int(KEEP_FINISHED_S * 1000)

_RENEW = """
if redis.call('HGET', KEYS[1], 'runner') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'lease_until', ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'job_id', ARGV[3]) end
return 1
"""

_RELEASE = """
if redis.call('HGET', KEYS[1], 'runner') ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], 'runner', 'job_id', 'lease_until')
return 1
"""


#: Writes to a plan that must exist: checked and written in one step, so a plan that expired meanwhile
#: is not brought back as a key without a TTL (its files) or as a head without owner or spec. Head and
#: files are renewed together, so neither outlives the other.
_UPDATE_FILE = """
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return 1
"""

_FINISH_PLAN = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'finished', '1')
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisIngestLedger:
    def __init__(self, url: str, prefix: str) -> None:
        self._r: Redis = Redis.from_url(
            url,
            decode_responses=True,
            socket_timeout=10.0,
            socket_connect_timeout=5.0,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RECONNECTS, (RedisConnectionError,)),
        )
        self._where = where_of(self._r)
        self._prefix = f"{prefix}ingest:"
        self._renew = self._r.register_script(_RENEW)
        self._release = self._r.register_script(_RELEASE)
        self._update_file = self._r.register_script(_UPDATE_FILE)
        self._finish_plan = self._r.register_script(_FINISH_PLAN)

    def _call(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except RedisError as exc:
            raise unreachable(self._where, exc) from None

    def _now(self) -> float:
        """Redis's clock: leases one replica writes are judged by others, whose clocks may differ."""
        seconds, micros = self._r.time()
        return float(seconds) + micros / 1e6

    def _upload_key(self, key: str) -> str:
        return f"{self._prefix}upload:{key}"

    def _reg_key(self, asset_id: str) -> str:
        return f"{self._prefix}reg:{asset_id}"

    def _plan_key(self, plan_id: str) -> str:
        return f"{self._prefix}plan:{plan_id}"

    def _write(self, key: str, mapping: dict[Any, Any]) -> None:
        def run() -> None:
            with self._r.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=mapping)
                pipe.pexpire(key, _TTL_MS)
                pipe.execute()

        self._call(run)

    def upload(self, key: str) -> Upload | None:
        raw = {_s(k): _s(v) for k, v in self._call(lambda: self._r.hgetall(self._upload_key(key))).items()}
        if not raw:
            return None
        state: UploadState = "done" if raw.get("state") == "done" else "sending"
        return Upload(key, state, raw.get("asset_id") or None, raw.get("filename") or None)

    def _sending_key(self, runner: str) -> str:
        return f"{self._prefix}sending:{runner}"

    def claim_upload(
        self, key: str, filename: str | None, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> Upload | None:
        name = self._upload_key(key)

        def run() -> Upload | None:
            with self._r.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(name)  # type: ignore[no-untyped-call]
                        raw = {_s(k): _s(v) for k, v in pipe.hgetall(name).items()}
                        now = self._now()
                        if raw:
                            state: UploadState = "done" if raw.get("state") == "done" else "sending"
                            found = Upload(
                                key, state, raw.get("asset_id") or None, raw.get("filename") or None
                            )
                            holder, until = raw.get("runner"), float(raw.get("lease_until") or 0)
                            if state == "done" or (
                                holder and holder != runner and until > now and alive(holder)
                            ):
                                pipe.unwatch()
                                return found
                        pipe.multi()
                        # A file name already recorded stays: it is the name a lost upload is looked up by.
                        fields: dict[Any, Any] = {
                            "state": "sending",
                            "runner": runner,
                            "lease_until": str(now + lease_s),
                        }
                        if not raw:
                            fields["filename"] = filename or ""
                        pipe.hset(name, mapping=fields)
                        pipe.pexpire(name, _TTL_MS)
                        pipe.sadd(self._sending_key(runner), name)
                        pipe.pexpire(self._sending_key(runner), _TTL_MS)
                        pipe.execute()
                        return None
                    except WatchError:
                        continue

        result: Upload | None = self._call(run)
        return result

    def renew_uploads(self, runner: str, lease_s: float) -> None:
        sending = self._sending_key(runner)

        def run() -> None:
            until = str(self._now() + lease_s)
            for name in self._r.smembers(sending):
                if not self._renew(keys=[name], args=[runner, until, ""]):
                    self._r.srem(sending, name)  # recorded, forgotten or released since

        self._call(run)

    def release_upload(self, key: str, runner: str) -> None:
        name = self._upload_key(key)
        self._call(lambda: self._release(keys=[name], args=[runner]))
        self._call(lambda: self._r.srem(self._sending_key(runner), name))

    def record_upload(self, key: str, asset_id: str, filename: str | None) -> None:
        name = self._upload_key(key)

        def run() -> None:
            with self._r.pipeline(transaction=True) as pipe:
                pipe.hset(name, mapping={"state": "done", "asset_id": asset_id, "filename": filename or ""})
                pipe.hdel(name, "runner", "lease_until")
                pipe.pexpire(name, _TTL_MS)
                pipe.execute()

        self._call(run)

    def forget_upload(self, key: str) -> None:
        self._call(lambda: self._r.delete(self._upload_key(key)))

    def registration(self, asset_id: str, destination: str) -> tuple[bool, str | None]:
        raw = self._call(lambda: self._r.hget(self._reg_key(asset_id), destination))
        return (raw is not None, _s(raw) or None if raw is not None else None)

    def claim_registration(
        self, asset_id: str, destination: str, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> tuple[bool, str | None] | None:
        name = self._reg_key(asset_id)
        holder_field, lease_field = f"{destination}|runner", f"{destination}|lease_until"

        def run() -> tuple[bool, str | None] | None:
            with self._r.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(name)  # type: ignore[no-untyped-call]
                        ref, holder, until = pipe.hmget(name, [destination, holder_field, lease_field])
                        now = self._now()
                        if holder and _s(holder) != runner and float(until or 0) > now and alive(_s(holder)):
                            pipe.unwatch()
                            return None
                        pipe.multi()
                        fields: dict[Any, Any] = {
                            holder_field: runner,
                            lease_field: str(now + lease_s),
                        }
                        if ref is None:
                            fields[destination] = ""  # the claim counts as an attempt from now on
                        pipe.hset(name, mapping=fields)
                        pipe.pexpire(name, _TTL_MS)
                        pipe.execute()
                        return (ref is not None, _s(ref) or None if ref is not None else None)
                    except WatchError:
                        continue

        result: tuple[bool, str | None] | None = self._call(run)
        return result

    def release_registration(self, asset_id: str, destination: str, runner: str) -> None:
        name = self._reg_key(asset_id)
        holder_field = f"{destination}|runner"

        def run() -> None:
            with self._r.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(name)  # type: ignore[no-untyped-call]
                    if pipe.hget(name, holder_field) != runner:
                        pipe.unwatch()
                        return
                    pipe.multi()
                    pipe.hdel(name, holder_field, f"{destination}|lease_until")
                    pipe.execute()
                except WatchError:
                    return  # changed meanwhile: it is no longer this runner's to release

        self._call(run)

    def intend_registration(self, asset_id: str, destination: str) -> None:
        self._write(self._reg_key(asset_id), {destination: ""})

    def record_registration(self, asset_id: str, destination: str, ref_id: str) -> None:
        self._write(self._reg_key(asset_id), {destination: ref_id})

    def plan(self, plan_id: str) -> Plan | None:
        key = self._plan_key(plan_id)

        def read() -> tuple[dict[Any, Any], dict[Any, Any]]:
            with self._r.pipeline(transaction=True) as pipe:
                pipe.hgetall(key)
                pipe.hgetall(f"{key}:files")
                head, files = pipe.execute()
            return head, files

        head, rows = self._call(read)
        if not head:
            return None
        head = {_s(k): _s(v) for k, v in head.items()}
        files = sorted((PlanFile(**json.loads(_s(v))) for v in rows.values()), key=lambda f: f.position)
        return Plan(
            plan_id, head["owner"], json.loads(head["spec"]), files, finished=head.get("finished") == "1"
        )

    def save_plan(self, plan: Plan) -> None:
        key = self._plan_key(plan.plan_id)

        def run() -> None:
            with self._r.pipeline(transaction=True) as pipe:
                pipe.delete(f"{key}:files")
                # A saved plan starts unclaimed, as the SQLite ledger's replaced row does.
                pipe.hdel(key, "runner", "job_id", "lease_until")
                pipe.hset(
                    key,
                    mapping={
                        "owner": plan.owner,
                        "spec": json.dumps(plan.spec),
                        "finished": str(int(plan.finished)),
                    },
                )
                if plan.files:
                    pipe.hset(
                        f"{key}:files", mapping={str(f.position): json.dumps(asdict(f)) for f in plan.files}
                    )
                pipe.pexpire(key, _TTL_MS)
                pipe.pexpire(f"{key}:files", _TTL_MS)
                pipe.execute()

        self._call(run)

    def update_file(self, plan_id: str, file: PlanFile) -> None:
        key = self._plan_key(plan_id)
        # Only a file the plan has, as the SQLite ledger's UPDATE touches no other row.
        args: list[str | int] = [str(file.position), json.dumps(asdict(file)), _TTL_MS]
        self._call(lambda: self._update_file(keys=[key, f"{key}:files"], args=args))

    def finish_plan(self, plan_id: str) -> None:
        key = self._plan_key(plan_id)
        self._call(lambda: self._finish_plan(keys=[key, f"{key}:files"], args=[_TTL_MS]))

    def claim_plan(
        self, plan_id: str, runner: str, lease_s: float, alive: Callable[[str], bool]
    ) -> tuple[str, str | None] | None:
        key = self._plan_key(plan_id)

        def run() -> tuple[str, str | None] | None:
            with self._r.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(key)  # type: ignore[no-untyped-call]
                        head = {_s(k): _s(v) for k, v in pipe.hgetall(key).items()}
                        if not head:
                            raise KeyError(plan_id)
                        holder, until = head.get("runner"), float(head.get("lease_until") or 0)
                        now = self._now()
                        if holder and until > now and (holder == runner or alive(holder)):
                            pipe.unwatch()
                            return holder, head.get("job_id") or None
                        pipe.multi()
                        pipe.hset(key, mapping={"runner": runner, "lease_until": str(now + lease_s)})
                        pipe.hdel(key, "job_id")
                        pipe.execute()
                        return None
                    except WatchError:
                        continue

        result: tuple[str, str | None] | None = self._call(run)
        return result

    def renew_plan(self, plan_id: str, runner: str, lease_s: float, *, job_id: str | None = None) -> None:
        def run() -> None:
            until = str(self._now() + lease_s)
            self._renew(keys=[self._plan_key(plan_id)], args=[runner, until, job_id or ""])

        self._call(run)

    def release_plan(self, plan_id: str, runner: str) -> None:
        self._call(lambda: self._release(keys=[self._plan_key(plan_id)], args=[runner]))

    async def aclose(self) -> None:
        """For `contextlib.aclosing` beside the server's other async resources."""
        self.close()

    def close(self) -> None:
        self._r.close()
