"""deploy/: the compose file and the HAProxy config it mounts (the one the replica test runs) agree.

Every replica service is a server HAProxy balances over, on the port the image listens on; every
replica shares the compose file's Redis and state keys and is built with the redis extra; and
HAProxy accepts the config with the environment compose gives it.
"""

from __future__ import annotations

import re
import subprocess
from typing import Any

import yaml

from tests.services import HAPROXY_CFG, ROOT, haproxy_binary

COMPOSE = ROOT / "deploy" / "compose.yaml"


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_haproxy_balances_over_every_replica_service_of_the_compose_file() -> None:
    services = _compose()["services"]
    replicas = sorted(name for name, s in services.items() if s.get("command", [None])[0] == "serve")
    assert len(replicas) >= 3, replicas
    lb = services["haproxy"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in lb["volumes"]
    assert (COMPOSE.parent / "haproxy.cfg").resolve() == HAPROXY_CFG.resolve()
    port = re.search(r"TL_MCP_PORT=(\d+)", (ROOT / "Dockerfile").read_text())
    assert port, "the Dockerfile no longer sets TL_MCP_PORT"
    targets = {k: v for k, v in lb["environment"].items() if k.startswith("LB_REPLICA")}
    assert sorted(targets.values()) == [f"{name}:{port.group(1)}" for name in replicas]
    servers = re.findall(r'^\s*server \S+ "\$\{(LB_REPLICA\d+)\}"', HAPROXY_CFG.read_text(), re.M)
    assert sorted(servers) == sorted(targets)


def test_every_replica_shares_redis_and_the_state_keys() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        if service.get("command", [None])[0] != "serve":
            continue
        env = service["environment"]
        assert env["TL_MCP_REDIS_URL"] == "redis://redis:6379/0", name
        assert "TL_MCP_STATE_KEYS" in env and "TL_MCP_AUTH_TOKENS" in env, name
        assert "redis" in service["build"]["args"]["EXTRAS"].split(","), name
    # Never evict: the shortest TTLs are the heartbeats, and evicting them would report live replicas'
    # jobs as lost; a full Redis refuses writes instead, which tl-mcp reports as "Redis did not answer".
    assert "noeviction" in services["redis"]["command"]


def test_haproxy_accepts_the_config_with_the_compose_environment() -> None:
    env = {k: str(v) for k, v in _compose()["services"]["haproxy"]["environment"].items()}
    checked = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(HAPROXY_CFG)], env=env, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
