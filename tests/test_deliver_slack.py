"""Slack channel against a Slack-like loopback receiver that enforces Slack's limits."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from monitor.deliver.base import make_sender
from monitor.deliver.slack import MAX_BLOCKS, build_message, escape
from monitor.settings import SlackChannel
from tests.receivers import Reply, SlackReceiver, sample_alert


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def channel(url: str) -> SlackChannel:
    return SlackChannel.model_validate({"type": "slack", "webhook_url": url})


def mrkdwn_texts(msg: dict[str, Any]) -> list[str]:
    out = []
    for block in msg["blocks"]:
        if block["type"] in ("section", "header"):
            out.append(block["text"]["text"])
        elif block["type"] == "context":
            out += [e["text"] for e in block["elements"]]
    return out


EVIL = "<!channel> & <http://evil.example|click me>"


async def test_alert_delivered_with_escaped_title(session: aiohttp.ClientSession) -> None:
    alert = sample_alert(title=EVIL, url="https://news.example.org/a?b=1&c=2")
    async with SlackReceiver() as slack:
        sender = make_sender("newsroom", channel(slack.url), session, allow_private_networks=True)
        result = await sender.send([alert])
        assert result.ok and result.status == 200
        (msg,) = slack.messages
    everything = msg["text"] + "".join(mrkdwn_texts(msg))
    assert "<!channel>" not in everything
    assert "<http://evil" not in everything
    assert "&lt;!channel&gt; &amp; &lt;http://evil.example|click me&gt;" in msg["text"]
    # the only link in the whole message is the article's own
    links = re.findall(r"<([^>]*)>", "\n".join(mrkdwn_texts(msg)))
    assert links == [
        "https://news.example.org/a?b=1&amp;c=2|&lt;!channel&gt; &amp; &lt;http://evil.example|click me&gt;"
    ]
    # every mrkdwn object is verbatim: Slack does not auto-link bare @here / #channel
    for block in msg["blocks"]:
        objs = [block.get("text"), *block.get("elements", [])]
        for obj in objs:
            if obj and obj["type"] == "mrkdwn":
                assert obj["verbatim"] is True


async def test_message_holds_title_feed_time_watchlist_terms_and_bold_snippet(
    session: aiohttp.ClientSession,
) -> None:
    async with SlackReceiver() as slack:
        sender = make_sender("n", channel(slack.url), session, allow_private_networks=True)
        assert (await sender.send([sample_alert()])).ok
        (msg,) = slack.messages
    text = "\n".join(mrkdwn_texts(msg))
    assert "<https://news.example.org/2024/01/03/wildfire?ref=rss|Wildfire forces" in text
    assert "Example World" in text and "2024-01-03 10:00 UTC" in text
    assert "wildfire-evacuations" in text
    assert "evacuation order, Lisbon" in text
    assert "issued an *evacuation order* for three" in text
    assert msg["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "🔔 wildfire-evacuations"},
    }


def test_bold_span_cannot_be_broken() -> None:
    alert = sample_alert(text="*boom_* `x` ~y~", snippet="a *b before *boom_* `x` ~y~ after_")
    msg = build_message([alert])
    snippet = next(t for t in mrkdwn_texts(msg) if t.startswith(">"))
    assert snippet.count("*") == 2 and "`" not in snippet and "~" not in snippet
    assert snippet == ">a ∗b before *∗boomˍ∗ ˋxˋ ∼y∼* afterˍ"


def test_escape_never_splits_an_entity() -> None:
    assert escape("a&b<c>d") == "a&amp;b&lt;c&gt;d"
    for budget in range(1, 20):
        out = escape("&&&&&&&&", budget)
        assert len(out) <= budget
        assert re.fullmatch(r"(&amp;)*…?", out), out


async def test_huge_fields_stay_within_limits(session: aiohttp.ClientSession) -> None:
    alert = sample_alert(
        title="&" * 5000,
        watchlist="w" * 400,
        text="<" * 300,
        snippet="&<>" * 3000 + "<" * 300 + "tail",
        url="https://news.example.org/" + "x" * 3000,
    )
    msg = build_message([alert])
    assert all(len(t) <= 3000 for t in mrkdwn_texts(msg))
    assert len(msg["blocks"][0]["text"]["text"]) <= 150
    async with SlackReceiver() as slack:  # strict: rejects what Slack would reject
        sender = make_sender("n", channel(slack.url), session, allow_private_networks=True)
        result = await sender.send([alert])
    assert result.ok, result.error


async def test_digest_groups_by_watchlist_and_truncates(session: aiohttp.ClientSession) -> None:
    alerts = [
        sample_alert(id=f"a{i}", watchlist=f"list-{i % 3}", title=f"Story {i}") for i in range(120)
    ]
    async with SlackReceiver() as slack:
        sender = make_sender("n", channel(slack.url), session, allow_private_networks=True)
        assert (await sender.send(alerts)).ok
        (msg,) = slack.messages
    blocks = msg["blocks"]
    assert len(blocks) == MAX_BLOCKS
    assert blocks[0]["text"]["text"] == "feedwatch digest: 120 alerts"
    shown = sum(1 for t in mrkdwn_texts(msg) if "|Story " in t)
    groups = [t for t in mrkdwn_texts(msg) if t.startswith("*list-")]
    assert groups[0] == "*list-0* (40 alerts)"
    tail = blocks[-1]["elements"][0]["text"]
    assert tail.startswith(f"…and {120 - shown} more")
    assert "list-" in tail


def test_small_digest_lists_every_alert_grouped() -> None:
    alerts = [
        sample_alert(id="1", watchlist="storms", title="Storm A"),
        sample_alert(id="2", watchlist="fires", title="Fire B"),
        sample_alert(id="3", watchlist="storms", title="Storm C"),
    ]
    texts = mrkdwn_texts(build_message(alerts))
    order = [t.split("|")[1].split(">")[0] if "|" in t else t for t in texts[1:]]
    assert order == ["*storms* (2 alerts)", "Storm A", "Storm C", "*fires* (1 alert)", "Fire B"]
    assert not any("more" in t for t in texts)


@pytest.mark.parametrize(
    ("reply", "retryable", "needle"),
    [
        (Reply(404, "channel_not_found"), False, "channel_not_found"),
        (Reply(403, "invalid_token"), False, "invalid_token"),
        (Reply(400, "invalid_payload"), False, "invalid_payload"),
        (Reply(429, "rate_limited", {"Retry-After": "30"}), True, "rate_limited"),
        (Reply(500, "oops"), True, "500"),
    ],
)
async def test_slack_errors(
    session: aiohttp.ClientSession, reply: Reply, retryable: bool, needle: str
) -> None:
    async with SlackReceiver(script=[reply]) as slack:
        sender = make_sender("n", channel(slack.url), session, allow_private_networks=True)
        result = await sender.send([sample_alert()])
    assert not result.ok and result.retryable is retryable
    assert result.status == reply.status
    assert result.error and needle in result.error
    assert slack.path not in result.error and "secret" not in result.error  # the URL is a token
    if reply.status == 429:
        assert result.retry_after == 30


async def test_private_slack_url_refused(session: aiohttp.ClientSession) -> None:
    async with SlackReceiver() as slack:
        sender = make_sender("n", channel(slack.url), session, allow_private_networks=False)
        result = await sender.send([sample_alert()])
        assert slack.requests == []
    assert not result.ok and not result.retryable and "refused" in (result.error or "")
