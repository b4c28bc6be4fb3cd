"""Apprise channel through apprise's json:// plugin against a real loopback receiver."""

from __future__ import annotations

from typing import Any

from monitor.deliver.apprise import build_notification
from monitor.deliver.base import make_sender
from monitor.settings import AppriseChannel
from tests.receivers import Reply, WebhookReceiver, sample_alert


def sender_for(url: str, allow: bool = True) -> Any:
    ch = AppriseChannel.model_validate({"type": "apprise", "url": url})
    return make_sender("phones", ch, None, allow_private_networks=allow)  # type: ignore[arg-type]


async def test_json_delivery_holds_title_and_body() -> None:
    async with WebhookReceiver() as r:
        result = await sender_for(f"json://127.0.0.1:{r.port}/hook").send([sample_alert()])
        assert result.ok, result.error
        (req,) = await r.wait_for(1)
    body = req.json()
    assert req.path == "/hook"
    assert body["title"] == "wildfire-evacuations: Wildfire forces evacuation order near Lisbon"
    message = body["message"]
    assert "https://news.example.org/2024/01/03/wildfire?ref=rss" in message
    assert "Example World · 2024-01-03 10:00 UTC" in message
    assert "Matched: evacuation order, Lisbon" in message
    assert "issued an «evacuation order» for three villages" in message


async def test_mass_mentions_are_defused() -> None:
    alert = sample_alert(title="@everyone look <!channel> <@U123>", text="@here")
    async with WebhookReceiver() as r:
        assert (await sender_for(f"json://127.0.0.1:{r.port}/hook").send([alert])).ok
        (req,) = await r.wait_for(1)
    body = req.json()
    everything = body["title"] + body["message"]
    for raw in ("@everyone", "@here", "<!channel>", "<@U123>"):
        assert raw not in everything
    assert "@\u200beveryone" in body["title"] and "<\u200b!channel>" in body["title"]


async def test_failure_is_retryable_and_never_shows_the_url() -> None:
    async with WebhookReceiver(script=[Reply(503, "down")]) as r:
        url = f"json://bot:hunter2token@127.0.0.1:{r.port}/hook/abcdef123456"
        result = await sender_for(url).send([sample_alert()])
        assert len(r.requests) == 1
        assert r.requests[0].headers["authorization"].startswith("Basic ")
    assert not result.ok and result.retryable
    assert result.error and result.error.startswith("apprise: notification failed")
    for secret in ("hunter2token", "abcdef123456", url):
        assert secret not in result.error


async def test_unknown_schema_fails_permanently() -> None:
    result = await sender_for("nosuchservice://token@whatever").send([sample_alert()])
    assert not result.ok and not result.retryable
    assert "recognise" in (result.error or "") and "token" not in (result.error or "")


async def test_private_host_refused_unless_allowed() -> None:
    async with WebhookReceiver() as r:
        result = await sender_for(f"json://127.0.0.1:{r.port}/hook", allow=False).send(
            [sample_alert()]
        )
        assert r.requests == []
    assert not result.ok and not result.retryable and "refused" in (result.error or "")


async def test_digest_is_one_notification() -> None:
    alerts = [
        sample_alert(id="1", watchlist="storms", title="Storm A"),
        sample_alert(id="2", watchlist="fires", title="Fire B"),
    ]
    title, body = build_notification(alerts)
    assert title == "feedwatch digest: 2 alerts"
    assert body.index("storms (1 alert)") < body.index("• Storm A") < body.index("fires (1 alert)")
    async with WebhookReceiver() as r:
        assert (await sender_for(f"json://127.0.0.1:{r.port}/").send(alerts)).ok
        (req,) = await r.wait_for(1)
    assert req.json()["message"] == body


async def test_apprise_debug_logs_never_carry_the_url(caplog: Any) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    async with WebhookReceiver(script=[Reply(503, "down")]) as r:
        url = f"json://bot:hunter2token@127.0.0.1:{r.port}/hook/abcdef123456"
        sender = sender_for(url)
        caplog.set_level(logging.DEBUG)  # even with the whole tree at DEBUG
        await sender.send([sample_alert()])
    assert caplog.records  # apprise did log something (its INFO/WARNING lines)
    for secret in ("hunter2token", "abcdef123456"):
        assert secret not in caplog.text
