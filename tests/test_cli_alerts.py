"""`feedwatch test-alert`, `feedwatch alerts` and `feedwatch alerts retry`, run as a user would
(in-process) against real receivers on 127.0.0.1; secrets must never show in any output."""

from __future__ import annotations

import base64
import json
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.harness import feedwatch
from tests.hostile_server import HostileServer
from tests.newsroom import Feed, Item, Newsroom
from tests.receivers import Reply, SlackReceiver, SmtpReceiver, WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"cli test signing key of 32 bytes").decode()
HEADER_TOKEN = "Bearer hdr-9f8e7d6c5b4a-never-print"
SMTP_PASSWORD = "smtp-pw-0a1b2c3d-never-print"
SLACK_PATH = "/services/T0SECRET/B0SECRET/xoxb-never-print"
# Three different events (distinct stories: same-looking copies would be one story).
EVENTS = [
    "An evacuation order was issued for the Arno valley on Monday after the river rose 4 metres.",
    "Firefighters ordered the evacuation of 300 homes near Lake Tahoe as a wildfire spread east.",
    "Police issued an evacuation order for the harbour district after a gas leak on Friday night.",
]
SECRETS = (SECRET, SECRET.split("_", 1)[1], HEADER_TOKEN, SMTP_PASSWORD, "xoxb-never-print")


async def cli(config: Path, *args: str) -> tuple[int, str, str]:
    code, out, err = await feedwatch(
        *args, "--config", str(config), env={"SMTP_PASSWORD": SMTP_PASSWORD}
    )
    for secret in SECRETS:
        assert secret not in out and secret not in err, f"secret leaked by {args}"
    return code, out, err


def config(
    tmp_path: Path,
    hook_url: str,
    slack_url: str = "http://127.0.0.1:9/x",
    smtp_port: int = 9,
    ca_file: str | None = None,
    feed: str = "http://127.0.0.1:9/feed.xml",
) -> Path:
    path = tmp_path / "feedwatch.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            storage:
              url: {tmp_path / "fw.db"}
            fetch:
              allow_private_networks: true
            defaults:
              extract: false
            delivery:
              drain_seconds: 2
              first_retry: 0.2s
            feeds:
              - url: {feed}
                name: Valley News
            channels:
              hook: {{type: webhook, url: "{hook_url}", secret: "{SECRET}",
                      headers: {{Authorization: "{HEADER_TOKEN}"}}}}
              newsroom: {{type: slack, webhook_url: "{slack_url}"}}
              editors: {{type: email, host: 127.0.0.1, port: {smtp_port}, security: starttls,
                         username: alerts, password: "${{SMTP_PASSWORD}}", from: alerts@example.org,
                         to: [desk@example.org], ca_file: {ca_file or "null"}}}
            watchlists:
              - name: evacuations
                keywords: ["evacuation order"]
                channels: [hook]
            """
        )
    )
    return path


# --------------------------------------------------------------------------- test-alert


async def test_test_alert_reaches_webhook_slack_and_smtp(tmp_path: Path) -> None:
    async with (
        WebhookReceiver() as hook,
        SlackReceiver(path=SLACK_PATH) as slack,
        SmtpReceiver(security="starttls", username="alerts", password=SMTP_PASSWORD) as smtp,
    ):
        cfg = config(tmp_path, hook.url, slack.url, smtp.port, str(smtp.ca_file))
        code, out, err = await cli(cfg, "test-alert", "hook", "--log-level", "debug")
        assert code == 0, err
        assert "hook: delivered (HTTP 200)" in out
        [req] = hook.requests
        assert req.json()["type"] == "match" and req.headers["webhook-id"] == req.json()["id"]
        assert req.headers["authorization"] == HEADER_TOKEN
        assert req.headers["webhook-signature"].startswith("v1,")

        code, out, err = await cli(cfg, "test-alert", "newsroom", "--log-level", "debug")
        assert code == 0, err
        assert "newsroom: delivered" in out
        assert "Test alert from feedwatch" in slack.messages[0]["text"]

        code, out, err = await cli(cfg, "test-alert", "editors", "--log-level", "debug")
        assert code == 0, err
        assert "editors: delivered" in out
        [mail] = await smtp.wait_for(1)
        assert "Test alert from feedwatch" in str(mail.message["Subject"])
        assert smtp.auth_attempts  # it authenticated (with the password from the environment)


async def test_test_alert_exits_1_when_not_delivered(tmp_path: Path) -> None:
    async with WebhookReceiver(script=[Reply(410, "hook removed")]) as hook:
        cfg = config(tmp_path, hook.url)
        code, out, err = await cli(cfg, "test-alert", "hook")
        assert code == 1
        assert out == ""
        assert "hook: not delivered: HTTP 410" in err and "permanent failure" in err
    # Nothing listens on port 9 for Slack: a connection error, one line, exit 1.
    code, out, err = await cli(cfg, "test-alert", "newsroom")
    assert code == 1 and "newsroom: not delivered" in err and "cannot connect" in err
    assert len(err.strip().splitlines()) == 1, err
    code, _out, err = await cli(cfg, "test-alert", "nope")
    assert code == 1 and "no channel named 'nope'" in err and "hook" in err


# --------------------------------------------------------------------------- alerts


@pytest.fixture
async def server() -> AsyncIterator[HostileServer]:
    async with HostileServer() as srv:
        yield srv


async def test_alerts_failed_shows_why_and_retry_requeues(
    tmp_path: Path, server: HostileServer
) -> None:
    items = [
        Item(f"v{i}", f"Evacuation order for valley {i}", [EVENTS[i]], summary=EVENTS[i])
        for i in range(3)
    ]
    feed = Newsroom(server).add(Feed("/valley.xml", "Valley", items))
    # The first alert's delivery is refused for good (410); the others are delivered.
    async with WebhookReceiver(script=[Reply(410, "this hook was deleted")]) as hook:
        cfg = config(tmp_path, hook.url, feed=feed)
        code, _out, err = await cli(cfg, "run", "--once")
        assert code == 3, err  # a delivery failed for good: the run needs attention
        assert "1 deliveries failed" in err.splitlines()[-1]
        assert len(hook.requests) == 3
        failed_id = hook.requests[0].headers["webhook-id"]

        code, out, err = await cli(cfg, "alerts", "--failed")
        assert code == 0, err
        assert failed_id in out and out.count("msg_") == 1
        assert "-> hook: failed after 1 attempt: HTTP 410" in out
        assert "this hook was deleted" in out

        code, out, _ = await cli(cfg, "alerts", "--json", "--since", "1d")
        data = json.loads(out)["alerts"]
        assert len(data) == 3
        by_id = {a["id"]: a["channels"]["hook"] for a in data}
        assert by_id[failed_id]["state"] == "failed" and by_id[failed_id]["last_status"] == 410
        assert sum(c["state"] == "delivered" for c in by_id.values()) == 2
        assert all(a["title"].startswith("Evacuation order") for a in data)

        code, out, err = await cli(cfg, "alerts", "--since", "yesterday")
        assert code == 1 and err.startswith("feedwatch: --since:") and "not a duration" in err

        code, out, err = await cli(cfg, "alerts", "retry", "msg_nope")
        assert code == 1 and "no such alert: msg_nope" in err
        code, out, err = await cli(cfg, "alerts", "retry")
        assert code == 1 and "needs an alert ID or --failed" in err

        # The receiver is fixed: re-queue and deliver with the next run.
        code, out, err = await cli(cfg, "alerts", "retry", "--failed")
        assert code == 0 and "re-queued 1 delivery" in out, err
        code, _out, err = await cli(cfg, "run", "--once")
        assert code == 0, err
        assert len(hook.requests) == 4
        assert hook.requests[3].headers["webhook-id"] == failed_id
        code, out, _ = await cli(cfg, "alerts", "--failed")
        assert out.strip() == "no alerts with a failed channel"
        # A delivered alert cannot be re-queued by id: after a 2xx it is never sent again.
        code, out, err = await cli(cfg, "alerts", "retry", failed_id)
        assert code == 0 and f"{failed_id}: nothing to re-queue (hook: delivered)" in out
        code, _out, err = await cli(cfg, "run", "--once")
        assert len(hook.requests) == 4
