"""Slack incoming-webhook channel: ``text`` fallback plus Block Kit blocks.

Safety: every article string is escaped per Slack rules (``&``, ``<``, ``>``), so a title can
never ping ``<!channel>`` or forge a ``<url|label>`` link; mrkdwn text objects are ``verbatim``
so Slack does not auto-link bare ``@here``/``#channel``/URLs either; and text shown in bold has
its mrkdwn markers (``* _ ~ ` ``) swapped for look-alikes so it cannot end the bold span early.

Limits (Slack rejects larger messages): section text 3000 characters, header 150, 50 blocks.
Pieces are cut before escaping so an entity such as ``&amp;`` is never split. A digest groups
alerts by watchlist and ends with "…and N more" when it does not fit.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from monitor.configtypes import Duration, check_http_url, mask_url
from monitor.deliver.base import SendResult, fail
from monitor.deliver.channel import ChannelConfig, ChannelType, SenderContext
from monitor.deliver.render import (
    AlertView,
    clip,
    group_by_watchlist,
    plural,
    split_highlight,
    view,
)

if TYPE_CHECKING:
    import aiohttp


class SlackChannel(ChannelConfig):
    type: Literal["slack"]
    webhook_url: SecretStr
    rate: float | None = Field(1.0, gt=0)  # Slack allows about one message per second
    timeout: Duration = 15.0

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, v: SecretStr) -> SecretStr:
        check_http_url(v.get_secret_value())
        return v


MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_HEADER = 150
MAX_FALLBACK = 3000

_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BOLD_SAFE = str.maketrans({"*": "∗", "_": "ˍ", "~": "∼", "`": "ˋ"})


def escape(text: str, budget: int | None = None) -> str:
    """Slack-escape ``text``; with a budget, cut (before escaping) so the result fits it."""
    out: list[str] = []
    used = 0
    for i, ch in enumerate(text):
        piece = _ESCAPES.get(ch, ch)
        if budget is not None and used + len(piece) > budget - (1 if i < len(text) - 1 else 0):
            out.append("…")
            break
        out.append(piece)
        used += len(piece)
    return "".join(out)


def bold(text: str, budget: int | None = None) -> str:
    """``*text*`` with the text escaped and unable to break out of the bold span."""
    inner = escape(text.translate(_BOLD_SAFE).strip(), None if budget is None else budget - 2)
    return f"*{inner}*" if inner else ""


def link(url: str | None, label: str, budget: int = 1200) -> str:
    """``<url|label>`` (escaped), or just the label when the URL is missing or too long."""
    label_part = escape(label.translate(_BOLD_SAFE), 400)
    if url:
        target = escape(url).replace("|", "%7C")
        if len(target) + len(label_part) + 3 <= budget:
            return f"<{target}|{label_part}>"
    return label_part


def _snippet(v: AlertView, budget: int) -> str:
    m = v.first_snippet
    if m is None:
        return ""
    out: list[str] = []
    remaining = budget
    for part, is_match in split_highlight(m.snippet, m.text):
        # markers are neutralised around the bold span too, so none can pair with its own
        piece = bold(part, remaining) if is_match else escape(part.translate(_BOLD_SAFE), remaining)
        out.append(piece)
        remaining -= len(piece)
        if remaining <= 3:
            break
    return "".join(out)


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:MAX_SECTION], "verbatim": True}


def _meta(v: AlertView, with_watchlist: bool = True) -> str:
    bits = [escape(b, 300) for b in (v.feed, v.published) if b]
    if with_watchlist:
        bits.append("watchlist " + escape(v.watchlist, 300))
    return " · ".join(bits)


def _alert_blocks(v: AlertView) -> list[dict[str, Any]]:
    title = f"*{link(v.url, v.title)}*"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": clip(f"🔔 {v.watchlist}", MAX_HEADER)},
        },
        {"type": "section", "text": _mrkdwn(title)},
    ]
    meta = _meta(v)
    if meta:
        blocks.append({"type": "context", "elements": [_mrkdwn(meta)]})
    if v.terms:
        terms = escape(", ".join(v.terms), 1500)
        blocks.append({"type": "section", "text": _mrkdwn(f"*Matched:* {terms}")})
    snippet = _snippet(v, 2500)
    if snippet:
        blocks.append({"type": "section", "text": _mrkdwn(f">{snippet}")})
    return blocks


def _digest_line(v: AlertView) -> str:
    lines = [f"*{link(v.url, v.title)}*"]
    meta = _meta(v, with_watchlist=False)
    if v.terms:
        meta = (meta + " · " if meta else "") + "matched: " + escape(", ".join(v.terms), 600)
    if meta:
        lines.append(meta)
    snippet = _snippet(v, 600)
    if snippet:
        lines.append(f">{snippet}")
    return "\n".join(lines)[:MAX_SECTION]


def build_message(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """The Slack webhook body for one alert or a digest of several."""
    views = [view(a) for a in alerts]
    if len(views) == 1:
        v = views[0]
        text = escape(f"{v.watchlist}: {v.title}", MAX_FALLBACK)
        return {"text": text, "blocks": _alert_blocks(v)}

    groups = group_by_watchlist(views)
    summary = f"feedwatch digest: {plural(len(views), 'alert')}"
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(summary, MAX_HEADER)}}
    ]
    shown = 0
    left: dict[str, int] = {}
    for watchlist, items in groups.items():
        if len(blocks) + 2 > MAX_BLOCKS - 1:  # a group needs its title and one alert; keep one
            left[watchlist] = len(items)
            continue
        blocks.append(
            {
                "type": "section",
                "text": _mrkdwn(f"*{escape(watchlist, 300)}* ({plural(len(items), 'alert')})"),
            }
        )
        for i, v in enumerate(items):
            if len(blocks) >= MAX_BLOCKS - 1:
                left[watchlist] = len(items) - i
                break
            blocks.append({"type": "section", "text": _mrkdwn(_digest_line(v))})
            shown += 1
    if left:
        hidden = len(views) - shown
        detail = ", ".join(f"{escape(w, 100)}: {n}" for w, n in left.items())
        blocks.append(
            {
                "type": "context",
                "elements": [_mrkdwn(clip(f"…and {hidden} more ({detail})", MAX_SECTION))],
            }
        )
    names = ", ".join(groups)
    text = escape(f"{summary} ({names})", MAX_FALLBACK)
    return {"text": text, "blocks": blocks}


class SlackSender:
    """POSTs alerts to a Slack incoming webhook through the shared aiohttp session."""

    def __init__(
        self,
        name: str,
        channel: SlackChannel,
        session: aiohttp.ClientSession,
        *,
        allow_private_networks: bool,
    ) -> None:
        self.name = name
        self.channel = channel
        self.session = session
        self.allow_private_networks = allow_private_networks

    async def send(self, alerts: list[dict[str, Any]]) -> SendResult:
        from monitor.deliver.httppost import USER_AGENT, post_json

        if not alerts:
            return fail("nothing to send: no alerts given")
        body = json.dumps(build_message(alerts), ensure_ascii=False, separators=(",", ":"))
        outcome = await post_json(
            self.session,
            self.channel.webhook_url.get_secret_value(),
            body.encode("utf-8"),
            {"Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT},
            time_limit=self.channel.timeout,
            allow_private_networks=self.allow_private_networks,
        )
        return outcome.result


def _describe(ch: SlackChannel) -> str:
    return f"slack -> {mask_url(ch.webhook_url.get_secret_value())}"


def _sender(name: str, ch: SlackChannel, ctx: SenderContext) -> SlackSender:
    return SlackSender(name, ch, ctx.session, allow_private_networks=ctx.allow_private_networks)


CHANNEL = ChannelType("slack", SlackChannel, _sender, _describe)
