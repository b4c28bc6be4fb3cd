"""Email channel (aiosmtplib): multipart/alternative, plain text and HTML.

Both parts hold the linked title, feed, time, watchlist, matched terms and a snippet. Article
text can never add a header: header values are built from ``render.clean_line`` (no CR/LF or
other controls) and set through ``EmailMessage`` with the default policy, which refuses line
breaks anyway. The HTML part escapes all article text and links only http(s) URLs.

Security: ``none`` (plain SMTP, never upgraded), ``starttls`` (STARTTLS required) or ``tls``
(implicit TLS). Certificates are always verified against the system store plus ``ca_file``.
SMTP 4xx replies and connection problems are retryable; 5xx replies (including a refused
login) fail permanently. Error messages never hold the password.
"""

from __future__ import annotations

import asyncio
import email.policy
import html
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from monitor.configtypes import Duration
from monitor.deliver.base import SendResult, delivered, fail, retry
from monitor.deliver.channel import ChannelConfig, ChannelType, SenderContext
from monitor.deliver.render import (
    AlertView,
    clean_line,
    clip,
    group_by_watchlist,
    plural,
    scrub,
    split_highlight,
    view,
)

if TYPE_CHECKING:
    pass


class EmailChannel(ChannelConfig):
    type: Literal["email"]
    host: str
    port: int | None = Field(None, ge=1, le=65535)
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    ca_file: Path | None = None
    timeout: Duration = 30.0

    @property
    def effective_port(self) -> int:
        return self.port or {"none": 25, "starttls": 587, "tls": 465}[self.security]

    @field_validator("to")
    @classmethod
    def _to(cls, v: list[str]) -> list[str]:
        for addr in v:
            if "@" not in addr or any(c in addr for c in "\r\n"):
                raise ValueError(f"{addr!r} is not an email address")
        return v


SUBJECT_PREFIX = "[feedwatch]"
_MAX_SUBJECT = 200


# --------------------------------------------------------------------------- message


def subject_for(views: list[AlertView]) -> str:
    """``[feedwatch] <watchlist>: <title>``; a digest names its count and watchlists."""
    if len(views) == 1:
        v = views[0]
        text = f"{SUBJECT_PREFIX} {v.watchlist}: {v.title}"
    else:
        names = ", ".join(group_by_watchlist(views))
        text = f"{SUBJECT_PREFIX} digest: {plural(len(views), 'alert')} ({names})"
    return clean_line(text, _MAX_SUBJECT)


def _text_alert(v: AlertView) -> list[str]:
    lines = [v.title]
    if v.raw_url:
        lines.append(v.url or v.raw_url)
    meta = " · ".join(b for b in (v.feed, v.published) if b)
    if meta:
        lines.append(meta)
    lines.append(f"Watchlist: {v.watchlist}")
    if v.terms:
        lines.append("Matched: " + ", ".join(v.terms))
    for m in v.matches[:5]:
        if m.snippet:
            marked = "".join(
                f"*{p}*" if hit else p for p, hit in split_highlight(m.snippet, m.text)
            )
            lines.append(f"  {m.kind} {m.term!r}: {marked}")
    return lines


def _html_alert(v: AlertView) -> str:
    e = html.escape
    title = e(v.title)
    if v.url:
        title = f'<a href="{e(v.url, quote=True)}">{title}</a>'
    parts = [f'<h3 style="margin:0 0 4px 0">{title}</h3>']
    meta = " · ".join(e(b) for b in (v.feed, v.published) if b)
    if meta:
        parts.append(f'<div style="color:#555">{meta}</div>')
    parts.append(f"<div>Watchlist: <b>{e(v.watchlist)}</b></div>")
    if v.terms:
        parts.append("<div>Matched: " + ", ".join(f"<b>{e(t)}</b>" for t in v.terms) + "</div>")
    snippets = []
    for m in v.matches[:5]:
        if m.snippet:
            marked = "".join(
                f"<mark><b>{e(p)}</b></mark>" if hit else e(p)
                for p, hit in split_highlight(m.snippet, m.text)
            )
            snippets.append(f"<li>{e(m.kind)} <i>{e(m.term)}</i>: {marked}</li>")
    if snippets:
        parts.append("<ul>" + "".join(snippets) + "</ul>")
    return '<div style="margin:0 0 16px 0">' + "\n".join(parts) + "</div>"


def _bodies(views: list[AlertView]) -> tuple[str, str]:
    e = html.escape
    if len(views) == 1:
        text = "\n".join(_text_alert(views[0]))
        body_html = _html_alert(views[0])
    else:
        text_parts = [f"feedwatch digest: {plural(len(views), 'alert')}", ""]
        html_parts = [f"<h2>feedwatch digest: {plural(len(views), 'alert')}</h2>"]
        for watchlist, items in group_by_watchlist(views).items():
            heading = f"{watchlist} ({plural(len(items), 'alert')})"
            text_parts += [heading, "=" * min(len(heading), 70), ""]
            html_parts.append(f"<h2>{e(heading)}</h2>")
            for v in items:
                text_parts += [*_text_alert(v), ""]
                html_parts.append(_html_alert(v))
        text = "\n".join(text_parts)
        body_html = "\n".join(html_parts)
    text += "\n\n-- \nSent by feedwatch.\n"
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head>'
        f'<body style="font-family:sans-serif">{body_html}'
        '<p style="color:#888;font-size:small">Sent by feedwatch.</p></body></html>'
    )
    return text, page


def build_email(
    alerts: list[dict[str, Any]], sender: str, recipients: list[str], now: datetime | None = None
) -> EmailMessage:
    """The message for one alert or a digest; raises ValueError for unusable addresses."""
    views = [view(a) for a in alerts]
    msg = EmailMessage()
    msg["Subject"] = subject_for(views)
    msg["From"] = clean_line(sender)
    msg["To"] = ", ".join(clean_line(r) for r in recipients)
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    domain = clean_line(sender).rpartition("@")[2].strip("> ") or "feedwatch.invalid"
    msg["Message-ID"] = make_msgid("feedwatch", domain=domain)  # a domain: no DNS lookup
    msg["Auto-Submitted"] = "auto-generated"
    ids = [v.id for v in views if v.id]
    if len(ids) == 1:
        msg["X-Feedwatch-Alert-Id"] = ids[0]
    text, page = _bodies(views)
    msg.set_content(text)
    msg.add_alternative(page, subtype="html")
    return msg


def _flatten(alerts: list[dict[str, Any]], sender: str, recipients: list[str]) -> bytes:
    """The message as wire bytes (CRLF, RFC 2047 headers), ready for DATA."""
    return build_email(alerts, sender, recipients).as_bytes(policy=email.policy.SMTP)


# --------------------------------------------------------------------------- sending


class EmailSender:
    """Sends alerts through one SMTP server; one connection per message."""

    def __init__(self, name: str, channel: EmailChannel, *, allow_private_networks: bool) -> None:
        self.name = name
        self.channel = channel
        self.allow_private_networks = allow_private_networks
        self._tls: ssl.SSLContext | None = None
        self._secrets = [channel.password.get_secret_value()] if channel.password else []

    def _tls_context(self) -> ssl.SSLContext:
        """System trust store plus ``ca_file``; built once (loading CAs is not free)."""
        if self._tls is None:
            ctx = ssl.create_default_context()
            if self.channel.ca_file is not None:
                ctx.load_verify_locations(cafile=str(self.channel.ca_file))
            self._tls = ctx
        return self._tls

    async def send(self, alerts: list[dict[str, Any]]) -> SendResult:
        ch = self.channel
        if not alerts:
            return fail("nothing to send: no alerts given")
        try:
            # a 500-alert digest takes tens of ms to build and flatten: keep it off the loop
            data = await asyncio.to_thread(_flatten, alerts, ch.from_, ch.to)
        except (ValueError, TypeError) as exc:
            return fail(f"cannot build the message: {scrub(str(exc), self._secrets, 160)}")
        tls: ssl.SSLContext | None = None
        if ch.security != "none":
            try:
                tls = await asyncio.to_thread(self._tls_context)
            except (OSError, ssl.SSLError) as exc:
                return fail(f"ca_file {ch.ca_file}: cannot load CA certificates ({exc})")
        import aiosmtplib  # here, not at import: reading a config stays cheap

        from monitor.deliver.guard import destination_refusal

        port = ch.effective_port
        try:
            refusal = await destination_refusal(
                ch.host, port, allow_private_networks=self.allow_private_networks
            )
        except (OSError, TimeoutError) as exc:
            return retry(f"cannot resolve {ch.host}: {scrub(str(exc), self._secrets, 120)}")
        if refusal:
            return fail(refusal)
        try:
            errors, _reply = await aiosmtplib.send(
                data,
                sender=parseaddr(clean_line(ch.from_))[1] or clean_line(ch.from_),
                recipients=list(ch.to),
                hostname=ch.host,
                port=port,
                username=ch.username,
                password=ch.password.get_secret_value() if ch.password else None,
                use_tls=ch.security == "tls",
                start_tls=True if ch.security == "starttls" else False,
                tls_context=tls,
                timeout=ch.timeout,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            return fail(
                f"SMTP login as {ch.username!r} refused by {ch.host} ({exc.code}): "
                "check username and password",
                exc.code,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return self._refused(exc.recipients)
        except aiosmtplib.SMTPResponseException as exc:
            return self._reply_error(exc.code, exc.message, "rejected the message")
        except aiosmtplib.SMTPException as exc:
            return retry(self._describe(exc))
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            return retry(self._describe(exc))
        except ValueError as exc:  # e.g. an address aiosmtplib cannot encode
            return fail(f"SMTP send not attempted: {scrub(str(exc), self._secrets, 160)}")
        if errors:
            refused = ", ".join(f"{clean_line(r, 80)} ({e.code})" for r, e in errors.items())
            return delivered(250, f"some recipients refused: {clip(refused, 200)}")
        return delivered(250)

    def _describe(self, exc: BaseException) -> str:
        text = scrub(str(exc), self._secrets, 200) or type(exc).__name__
        low = text.lower()
        if "certificate" in low or "ssl" in low or isinstance(exc, ssl.SSLError):
            hint = " (is the server's CA in ca_file?)" if "verify failed" in low else ""
            return f"TLS with {self.channel.host} failed: {text}{hint}"
        if "starttls" in low and "not supported" in low:
            return f"{self.channel.host} does not offer STARTTLS (check security: none | tls)"
        return f"SMTP {self.channel.host}:{self.channel.effective_port}: {text}"

    def _reply_error(self, code: int, message: str, what: str) -> SendResult:
        text = f"SMTP {self.channel.host} {what} ({code} {scrub(message, self._secrets, 160)})"
        if 400 <= code < 500 or code < 0:
            return retry(text, code)
        return fail(text, code)

    def _refused(self, recipients: list[Any]) -> SendResult:
        """Every recipient refused: retry only if all refusals were temporary (4xx)."""
        codes = [getattr(r, "code", 550) for r in recipients]
        detail = ", ".join(
            f"{clean_line(getattr(r, 'recipient', ''), 80)} ({getattr(r, 'code', '?')})"
            for r in recipients
        )
        text = f"SMTP {self.channel.host} refused every recipient: {clip(detail, 200)}"
        if codes and all(400 <= c < 500 for c in codes):
            return retry(text, codes[0])
        return fail(text, codes[0] if codes else None)


def _describe(ch: EmailChannel) -> str:
    auth = f", user {ch.username}, password ***" if ch.username else ""
    return (
        f"email via {ch.host}:{ch.effective_port} ({ch.security}{auth}) "
        f"from {ch.from_} to {', '.join(ch.to)}"
    )


def _sender(name: str, ch: EmailChannel, ctx: SenderContext) -> EmailSender:
    return EmailSender(name, ch, allow_private_networks=ctx.allow_private_networks)


CHANNEL = ChannelType("email", EmailChannel, _sender, _describe)
