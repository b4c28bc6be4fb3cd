"""The daemon's HTTP server: /metrics counts what a pass did, /healthz and /readyz, the token."""

from __future__ import annotations

import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.daemon import Daemon
from monitor.settings import ConfigError, load_config
from tests.harness import feedwatch
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import Reply, WebhookReceiver

TOKEN = "t0ken-for-metrics-0123456789"
EVENTS = [  # three different events: three stories, three alerts
    "An evacuation order was issued for the Arno valley on Monday after the river rose 4 metres.",
    "Firefighters ordered the evacuation of 300 homes near Lake Tahoe as a wildfire spread east.",
    "Police issued an evacuation order for the harbour district after a gas leak on Friday night.",
]
ITEMS = [Item(f"s{i}", f"Evacuation order {i}", [EVENTS[i]]) for i in range(3)]


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as srv:
        yield srv


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_after_a_pass_equal_what_the_pass_did(
    tmp_path: Path, server: HostileServer
) -> None:
    good = Newsroom(server).add(Feed("/good.xml", "Good", ITEMS))
    async with WebhookReceiver(script=[200, 200, Reply(410)]) as hook:
        (tmp_path / "feedwatch.yaml").write_text(
            textwrap.dedent(
                f"""
                storage: {{url: {tmp_path / "fw.db"}}}
                fetch: {{allow_private_networks: true}}
                server: {{listen: "127.0.0.1:0"}}
                feeds:
                  - {{url: "{good}", name: Good}}
                  - {{url: "{server.url("/status/500")}", name: Down}}
                channels: {{hook: {{type: webhook, url: "{hook.url}"}}}}
                watchlists: [{{name: evac, keywords: ["evacuation order"], channels: [hook]}}]
                """
            )
        )
        cfg = load_config(tmp_path / "feedwatch.yaml", env={})
        async with Daemon(cfg) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.server.port}"
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 503  # started, but no scheduling pass yet
            await daemon.run_once()
            async with http.get(f"{base}/readyz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/healthz") as resp:
                health = await resp.json()
                assert resp.status == 200 and health["status"] == "ok"
                assert health["storage"] == "ok" and health["daemon"] == daemon.daemon_id
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                assert resp.headers["Content-Type"].startswith("text/plain")
                m = samples(await resp.text())
    assert m[("feedwatch_polls_total", (("outcome", "ok"),))] == 1
    assert m[("feedwatch_polls_total", (("outcome", "error"),))] == 1
    assert m[("feedwatch_polls_total", (("outcome", "not_modified"),))] == 0
    assert m[("feedwatch_articles_new_total", ())] == 3
    assert m[("feedwatch_alerts_total", (("watchlist", "evac"),))] == 3
    delivered = (("channel", "hook"), ("outcome", "delivered"))
    assert m[("feedwatch_deliveries_total", delivered)] == 2
    assert m[("feedwatch_deliveries_total", (("channel", "hook"), ("outcome", "failed")))] == 1
    assert m[("feedwatch_outbox_queued", ())] == 0
    assert m[("feedwatch_feeds", (("state", "ok"),))] == 1
    assert m[("feedwatch_feeds", (("state", "failing"),))] == 1
    assert m[("feedwatch_feeds", (("state", "disabled"),))] == 0
    assert ("feedwatch_event_loop_lag_seconds", ()) in m
    assert m[("process_resident_memory_bytes", ())] > 10_000_000
    assert m[("feedwatch_fetch_duration_seconds_count", (("kind", "feed"),))] == 1
    assert m[("feedwatch_fetch_bytes_total", (("kind", "page"),))] > 0


async def test_beyond_loopback_a_token_is_required(tmp_path: Path) -> None:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(f"storage: {{url: {tmp_path / 'fw.db'}}}\nserver: {{listen: '0.0.0.0:0'}}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert "server.token is required" in info.value.errors[0]

    path.write_text(
        f"storage: {{url: {tmp_path / 'fw.db'}}}\n"
        "server: {listen: '0.0.0.0:0', token: '${FEEDWATCH_TOKEN}'}\n"
    )
    cfg = load_config(path, env={"FEEDWATCH_TOKEN": TOKEN})
    async with Daemon(cfg) as daemon, aiohttp.ClientSession() as http:
        base = f"http://127.0.0.1:{daemon.server.port}"
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 401 and TOKEN not in await resp.text()
        async with http.get(f"{base}/metrics", headers={"Authorization": "Bearer wrong"}) as resp:
            assert resp.status == 401
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with http.get(f"{base}/metrics", headers=auth) as resp:
            assert resp.status == 200 and "feedwatch_polls_total" in await resp.text()
        async with http.get(f"{base}/healthz") as resp:  # probes stay open
            assert resp.status == 200
    code, out, err = await feedwatch("check", "--config", str(path), env={"FEEDWATCH_TOKEN": TOKEN})
    assert code == 0 and TOKEN not in out + err


async def test_json_logs_carry_every_field_as_a_key(tmp_path: Path, server: HostileServer) -> None:
    good = Newsroom(server).add(Feed("/good.xml", "Good", ITEMS[:1]))
    (tmp_path / "feedwatch.yaml").write_text(
        textwrap.dedent(
            f"""
            storage: {{url: {tmp_path / "fw.db"}}}
            fetch: {{allow_private_networks: true}}
            feeds:
              - {{url: "{good}", name: Good}}
              - {{url: "{server.url("/status/503")}", name: Broken Feed}}
            """
        )
    )
    code, _out, err = await feedwatch(
        "run", "--once", "--log-json", "--config", str(tmp_path / "feedwatch.yaml")
    )
    assert code == 3
    lines = [line for line in err.splitlines() if line.startswith("{")]
    events = [json.loads(line) for line in lines]
    assert len(lines) == len(err.splitlines()) - 1  # all but the one-line summary
    assert all({"ts", "level", "event"} <= set(e) for e in events)
    failed = next(e for e in events if e["event"] == "feed failed")
    assert failed["feed"] == "Broken Feed" and failed["level"] == "warning"
    assert failed["url"] == server.url("/status/503") and "503" in failed["error"]
    polled = next(e for e in events if e["event"] == "feed polled")
    assert polled["feed"] == "Good" and polled["new"] == 1 and polled["status"] == 200
    assert all("daemon" in e for e in events if e["logger"].startswith("monitor."))
