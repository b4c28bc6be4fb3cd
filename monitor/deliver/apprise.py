"""Apprise channel: one URL (ntfy://, tgram://, discord://, json://, ...) for many services.

Apprise's notify is blocking (it uses ``requests``), so it runs in a worker thread. The body is
plain text (apprise converts it for HTML or Markdown services, escaping as it goes), with
mass-mention forms such as ``@everyone`` and ``<!channel>`` broken by a zero-width space so an
article can never ping a whole chat. The apprise URL holds tokens: it is never logged, and
error messages are scrubbed of it and its parts.

Apprise only reports success or failure, not why, so every failed notification is treated as
retryable (a wrong token is then retried until ``retry_for`` runs out); a URL apprise does not
recognise fails permanently at once.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import SecretStr

from monitor.deliver.base import SendResult, delivered, fail, retry
from monitor.deliver.channel import ChannelConfig, ChannelType, SenderContext
from monitor.deliver.render import (
    AlertView,
    clip,
    group_by_watchlist,
    plural,
    scrub,
    split_highlight,
    view,
)
from monitor.logs import get_logger

log = get_logger(__name__)


class AppriseChannel(ChannelConfig):
    type: Literal["apprise"]
    url: SecretStr


MAX_BODY = 4000  # most chat services cut far below their hard limits; keep messages readable
# Schemas whose host part is a server we connect to (so allow_private_networks applies).
_HOST_SCHEMAS = {"json", "jsons", "form", "forms", "xml", "xmls", "gotify", "gotifys"}
_NTFY_SCHEMAS = {"ntfy", "ntfys"}  # ntfy://topic (ntfy.sh) or ntfy://host/topic
_MENTION_RE = re.compile(r"(@)(everyone|here|channel)\b|(<)([@!#])", re.IGNORECASE)


def _defuse(text: str) -> str:
    """Break ``@everyone``-style and ``<@id>``/``<!channel>`` mentions with a zero-width space."""
    return _MENTION_RE.sub(
        lambda m: f"@\u200b{m.group(2)}" if m.group(1) else f"<\u200b{m.group(4)}", text
    )


def _alert_text(v: AlertView) -> list[str]:
    lines = []
    if v.raw_url:
        lines.append(v.url or v.raw_url)
    meta = " · ".join(b for b in (v.feed, v.published) if b)
    if meta:
        lines.append(meta)
    if v.terms:
        lines.append("Matched: " + ", ".join(v.terms))
    m = v.first_snippet
    if m is not None:
        marked = "".join(f"«{p}»" if hit else p for p, hit in split_highlight(m.snippet, m.text))
        lines.append(f"“{marked}”")
    return lines


def build_notification(alerts: list[dict[str, Any]]) -> tuple[str, str]:
    """(title, body) as plain text for one alert or a digest."""
    views = [view(a) for a in alerts]
    if len(views) == 1:
        v = views[0]
        title = f"{v.watchlist}: {v.title}"
        body = "\n".join(_alert_text(v))
    else:
        title = f"feedwatch digest: {plural(len(views), 'alert')}"
        parts: list[str] = []
        for watchlist, items in group_by_watchlist(views).items():
            parts.append(f"{watchlist} ({plural(len(items), 'alert')})")
            for v in items:
                parts.append(f"• {v.title}")
                parts += [f"  {line}" for line in _alert_text(v)]
            parts.append("")
        body = "\n".join(parts).strip()
    return _defuse(clip(title, 250)), _defuse(clip(body, MAX_BODY))


def _url_secrets(url: str) -> list[str]:
    """The URL and every part of it that may be a token, for scrubbing error text."""
    out = [url]
    try:
        parts = urlsplit(url)
    except ValueError:
        return out
    out += [parts.netloc, parts.netloc.lower(), parts.username or "", parts.password or ""]
    out += [seg for seg in parts.path.split("/") if len(seg) >= 6]
    out += [v for _k, v in parse_qsl(parts.query) if len(v) >= 4]
    return [s for s in out if s]


class AppriseSender:
    """Sends through apprise; the Apprise object is built once, in a thread (plugin loading)."""

    def __init__(self, name: str, channel: AppriseChannel, *, allow_private_networks: bool) -> None:
        self.name = name
        self.channel = channel
        self.allow_private_networks = allow_private_networks
        self._url = channel.url.get_secret_value()
        self._secrets = _url_secrets(self._url)
        self._apprise: Any = None
        self._lock = threading.Lock()
        # DEBUG lines of apprise and of urllib3 (under requests) show URL paths, which hold the
        # tokens of many services; their INFO and WARNING lines do not.
        for logger_name in ("apprise", "urllib3"):
            lib_log = logging.getLogger(logger_name)
            if lib_log.level < logging.INFO:
                lib_log.setLevel(logging.INFO)

    def _instance(self) -> Any:
        with self._lock:
            if self._apprise is None:
                import apprise

                ap = apprise.Apprise()
                if not ap.add(self._url):
                    raise ValueError("apprise does not recognise this URL (check its schema)")
                self._apprise = ap
            return self._apprise

    def _notify(self, title: str, body: str) -> tuple[bool, str]:
        import apprise

        ap = self._instance()
        result = ap.notify(body=body, title=title, body_format=apprise.NotifyFormat.TEXT)
        if result:
            return True, ""
        detail = ""
        logs = getattr(result, "logs", None)
        if callable(logs):
            errors = [e.message for e in logs() if e.level in ("ERROR", "WARNING")]
            if errors:
                detail = errors[-1]
        names = ", ".join(getattr(r, "name", "") for r in getattr(result, "results", ()) or ())
        return False, f"{names}: {detail}" if names and detail else (detail or names)

    async def _refusal(self) -> str | None:
        from monitor.deliver.guard import destination_refusal

        parts = urlsplit(self._url)
        schema = parts.scheme.lower()
        host = parts.hostname
        if not host:
            return None
        if schema in _HOST_SCHEMAS or (schema in _NTFY_SCHEMAS and parts.path.strip("/")):
            return await destination_refusal(
                host,
                parts.port or (443 if schema.endswith("s") else 80),
                allow_private_networks=self.allow_private_networks,
            )
        return None

    async def send(self, alerts: list[dict[str, Any]]) -> SendResult:
        if not alerts:
            return fail("nothing to send: no alerts given")
        try:
            refusal = await self._refusal()
        except (OSError, TimeoutError) as exc:
            return retry(
                f"apprise: cannot resolve the service host: {scrub(str(exc), self._secrets, 120)}"
            )
        except ValueError:
            return fail("apprise: the URL cannot be parsed")
        if refusal:
            return fail(scrub(refusal, self._secrets))
        title, body = build_notification(alerts)
        try:
            ok, detail = await asyncio.to_thread(self._notify, title, body)
        except ValueError as exc:
            return fail(f"apprise: {exc}")
        except Exception as exc:  # a plugin bug is one failed attempt, never a crash
            log.warning("apprise error", channel=self.name, kind=type(exc).__name__)
            return retry(f"apprise: {type(exc).__name__}: {scrub(str(exc), self._secrets, 160)}")
        if ok:
            return delivered()
        return retry(
            "apprise: notification failed"
            + (f" ({scrub(detail, self._secrets, 200)})" if detail else "")
        )


def _describe(ch: AppriseChannel) -> str:
    scheme = ch.url.get_secret_value().split("://", 1)[0]
    return f"apprise -> {scheme}://***"


def _sender(name: str, ch: AppriseChannel, ctx: SenderContext) -> AppriseSender:
    return AppriseSender(name, ch, allow_private_networks=ctx.allow_private_networks)


CHANNEL = ChannelType("apprise", AppriseChannel, _sender, _describe)
