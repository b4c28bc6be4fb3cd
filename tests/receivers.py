"""Real loopback receivers for delivery tests: a webhook endpoint, a Slack look-alike, an SMTP server.

All listen on 127.0.0.1 with a free port, record everything they receive, and answer from a
script, so a test can drive retries end to end without mocks::

    from tests.receivers import Reply, SlackReceiver, SmtpReceiver, WebhookReceiver

    async with WebhookReceiver(script=[503, Reply(429, headers={"Retry-After": "7"}), 200]) as r:
        ...  # point a webhook channel at r.url
        reqs = await r.wait_for(3)  # -> [ReceivedRequest, ...] (bounded wait)
        reqs[0].headers["webhook-id"], reqs[0].json()

    async with SlackReceiver(script=[Reply(404, "channel_not_found")]) as slack:
        slack.url, slack.messages  # parsed JSON bodies; oversized blocks get 400 invalid_blocks

    async with SmtpReceiver(security="starttls", username="u", password="p") as smtp:
        smtp.host, smtp.port, smtp.ca_file  # ca_file: the trustme CA that signed the server cert
        mails = await smtp.wait_for(1)       # -> [ReceivedMail] with .message (EmailMessage)

Scripts: each request consumes the next entry (an int status, a ``Reply``, or a callable taking
the ``ReceivedRequest`` and returning either); when the script is used up, ``default`` answers.

Time: ``WebhookReceiver(clock=fake_clock)`` stamps each request (``at``) with the injected
clock's time, so a test asserts exact fake-time gaps (a retry 0.2 s after the first try) instead of
measuring the machine. ``Reply(hold=event)`` keeps the answer back until the test sets ``event``
(or the receiver closes): a send that is "slow" or "hanging" for exactly as long as the test needs.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import ssl
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from monitor.clock import Clock, wait_any

__all__ = [
    "ReceivedMail",
    "ReceivedRequest",
    "Reply",
    "SlackReceiver",
    "SmtpReceiver",
    "WebhookReceiver",
    "sample_alert",
]

WAIT_LIMIT = 10.0  # the longest any wait_for waits by default


@dataclass
class Reply:
    """One scripted HTTP answer, sent once ``hold`` (if given) is set: a slow or hanging
    receiver, for exactly as long as the test needs (a client timeout fires in real time)."""

    status: int = 200
    body: str | bytes = ""
    headers: dict[str, str] = field(default_factory=dict)
    hold: asyncio.Event | None = None


@dataclass
class ReceivedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    at: float  # arrival, in unix seconds: time.time(), or the receiver's injected clock

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8")


Script = Iterable[int | Reply | Callable[[ReceivedRequest], "int | Reply"]]


def _as_reply(step: Any, req: ReceivedRequest) -> Reply:
    if callable(step) and not isinstance(step, Reply):
        step = step(req)
    return Reply(step) if isinstance(step, int) else step


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records every request and answers from a script."""

    def __init__(
        self,
        script: Script = (),
        *,
        default: int | Reply = 200,
        path: str = "/hook",
        clock: Clock | None = None,
    ) -> None:
        self._script = list(script)
        self.default = default
        self.path = path
        self.clock = clock
        self.requests: list[ReceivedRequest] = []
        self._runner: web.AppRunner | None = None
        self._arrived = asyncio.Condition()
        self._closing = asyncio.Event()  # releases every held answer
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The URL to configure in the channel under test."""
        return self.base_url + self.path

    def push(self, *steps: int | Reply) -> None:
        """Append answers to the script."""
        self._script.extend(steps)

    def _next(self, req: ReceivedRequest) -> Reply:
        return _as_reply(self._script.pop(0) if self._script else self.default, req)

    def _check(self, req: ReceivedRequest) -> Reply | None:
        """Hook for subclasses: an answer that overrides the script (validation failures)."""
        return None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        req = ReceivedRequest(
            method=request.method,
            path=request.path_qs,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            at=self.clock.now().timestamp() if self.clock is not None else time.time(),
        )
        reply = self._check(req) or self._next(req)
        async with self._arrived:
            self.requests.append(req)
            self._arrived.notify_all()
        if reply.hold is not None:
            await wait_any([reply.hold, self._closing], None)
        return web.Response(status=reply.status, body=reply.body, headers=reply.headers)

    async def wait_for(self, count: int, timeout: float = WAIT_LIMIT) -> list[ReceivedRequest]:
        """The first ``count`` requests, waiting up to ``timeout`` s; raises TimeoutError."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests[:count]

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()


class SlackReceiver(WebhookReceiver):
    """A Slack incoming-webhook look-alike: answers ``ok``; enforces Slack's message limits.

    With ``strict`` (the default) a body that is not JSON with a string ``text``, or that has
    more than 50 blocks, a header over 150 or a section/context text over 3000 characters, gets
    ``400 invalid_blocks`` like Slack would, whatever the script says.
    """

    def __init__(
        self, script: Script = (), *, strict: bool = True, path: str = "/services/T0/B0/secret"
    ) -> None:
        super().__init__(script, default=Reply(200, "ok"), path=path)
        self.strict = strict

    @property
    def messages(self) -> list[dict[str, Any]]:
        """Every received body, parsed."""
        return [r.json() for r in self.requests]

    def _check(self, req: ReceivedRequest) -> Reply | None:
        if not self.strict:
            return None
        try:
            msg = req.json()
        except ValueError:
            return Reply(400, "invalid_payload")
        if not isinstance(msg, dict) or not isinstance(msg.get("text"), str):
            return Reply(400, "invalid_payload")
        blocks = msg.get("blocks", [])
        if not isinstance(blocks, list) or len(blocks) > 50:
            return Reply(400, "invalid_blocks")
        for block in blocks:
            kind = block.get("type")
            texts = [block.get("text", {})] if kind in ("header", "section") else []
            texts += block.get("elements", []) if kind == "context" else []
            limit = 150 if kind == "header" else 3000
            if any(len(t.get("text", "")) > limit for t in texts):
                return Reply(400, "invalid_blocks")
        return None


# --------------------------------------------------------------------------- SMTP


@dataclass
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes  # the message as sent
    auth_user: str | None
    tls: bool  # whether the session was encrypted (STARTTLS or implicit TLS)

    @property
    def message(self) -> EmailMessage:
        """The parsed message (``email.policy.default``)."""
        msg = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class _Handler:
    def __init__(self, owner: SmtpReceiver) -> None:
        self.owner = owner

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.owner.rcpt_reply:
            return self.owner.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.owner.data_replies:
            reply = self.owner.data_replies.pop(0)
            if not reply.startswith("2"):
                return reply
        user = session.auth_data if isinstance(session.auth_data, str) else None
        implicit_tls = server.transport is not None and server.transport.get_extra_info(
            "ssl_object"
        )
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            data=envelope.original_content or envelope.content,
            auth_user=user,
            tls=session.ssl is not None or bool(implicit_tls),
        )
        async with self.owner._arrived:
            self.owner.messages.append(mail)
            self.owner._arrived.notify_all()
        return "250 Message accepted for delivery"


class SmtpReceiver:
    """An aiosmtpd server on 127.0.0.1, in the test's own event loop.

    security: ``none``, ``starttls`` (STARTTLS offered and required) or ``tls`` (implicit TLS).
    The certificate (for 127.0.0.1 and localhost) comes from a trustme CA written to
    ``ca_file``. With ``username``/``password`` set, AUTH is required and checked.
    ``rcpt_reply`` (e.g. ``"550 5.1.1 no such user"``) answers every RCPT; ``data_replies``
    answers successive DATA commands (e.g. ``["451 4.3.0 try later"]``) before accepting.
    """

    def __init__(
        self,
        *,
        security: Literal["none", "starttls", "tls"] = "none",
        username: str | None = None,
        password: str | None = None,
        rcpt_reply: str | None = None,
        data_replies: Iterable[str] = (),
    ) -> None:
        self.security = security
        self.username = username
        self.password = password
        self.rcpt_reply = rcpt_reply
        self.data_replies = list(data_replies)
        self.messages: list[ReceivedMail] = []
        self.auth_attempts: list[str] = []
        self.host = "127.0.0.1"
        self.port = 0
        self._arrived = asyncio.Condition()
        self._server: asyncio.base_events.Server | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="smtp-ca-")
        self.ca_file = Path(self._tmp.name) / "ca.pem"
        self._server_ctx: ssl.SSLContext | None = None
        if security != "none":
            import trustme

            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1", "localhost")
            ca.cert_pem.write_to_path(str(self.ca_file))
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(ctx)
            self._server_ctx = ctx

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        login = auth_data.login.decode() if hasattr(auth_data, "login") else ""
        password = auth_data.password.decode() if hasattr(auth_data, "password") else ""
        self.auth_attempts.append(login)
        ok = login == self.username and password == self.password
        return AuthResult(success=ok, handled=False, auth_data=login if ok else None)

    async def wait_for(self, count: int, timeout: float = WAIT_LIMIT) -> list[ReceivedMail]:
        """The first ``count`` messages, waiting up to ``timeout`` s; raises TimeoutError."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.messages) >= count)
        return self.messages[:count]

    async def __aenter__(self) -> SmtpReceiver:
        from aiosmtpd.smtp import SMTP

        auth = self.username is not None

        def factory() -> SMTP:
            return SMTP(
                _Handler(self),
                hostname="feedwatch-test-smtp",
                tls_context=self._server_ctx if self.security == "starttls" else None,
                require_starttls=self.security == "starttls",
                authenticator=self._authenticate if auth else None,
                auth_required=auth,
                # STARTTLS sessions must upgrade before AUTH; implicit TLS is encrypted already
                auth_require_tls=self.security == "starttls",
                timeout=30,
            )

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            factory,
            self.host,
            0,
            ssl=self._server_ctx if self.security == "tls" else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self._tmp.cleanup()


# --------------------------------------------------------------------------- sample data


def sample_alert(
    *,
    id: str = "wl_0123456789abcdef",
    watchlist: str = "wildfire-evacuations",
    title: str = "Wildfire forces evacuation order near Lisbon",
    url: str = "https://news.example.org/2024/01/03/wildfire?ref=rss",
    text: str = "evacuation order",
    snippet: str | None = None,
    **article: Any,
) -> dict[str, Any]:
    """A contract webhook payload (``type: match``); keyword arguments override its fields."""
    snippet = snippet or f"…officials issued an {text} for three villages east of Lisbon…"
    return {
        "type": "match",
        "id": id,
        "watchlist": watchlist,
        "article": {
            "url": url,
            "title": title,
            "published": "2024-01-03T10:00:00Z",
            "feed": "Example World",
            "summary": "Firefighters battle a wildfire; officials order evacuations.",
            **article,
        },
        "matches": [
            {"kind": "keyword", "term": "evacuation order", "text": text, "snippet": snippet},
            {"kind": "place", "term": "Lisbon", "text": "Lisbon", "snippet": "…east of Lisbon…"},
        ],
    }
