"""Generic webhook channel: the contract payload as JSON, signed per Standard Webhooks.

Body: the payload as compact UTF-8 JSON. Headers: ``webhook-id`` (the payload id, the same on
every retry), ``webhook-timestamp`` (unix seconds, fresh on every attempt) and, when a secret is
set, ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``.

Digest extension: several alerts sent together are wrapped as
``{"type": "digest", "id": "digest_<32 hex>", "alerts": [payload, ...]}``; the id is derived from
the sorted alert ids, so a retried digest keeps its ``webhook-id``. Receivers that only know
``type: match`` can ignore other types.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, field_validator

from monitor.configtypes import Duration, HttpUrl, mask_url, signing_key
from monitor.deliver.base import SendResult, fail
from monitor.deliver.channel import ChannelConfig, ChannelType, SenderContext
from monitor.deliver.render import digest_id

if TYPE_CHECKING:
    import aiohttp


class WebhookChannel(ChannelConfig):
    type: Literal["webhook"]
    url: HttpUrl
    secret: SecretStr | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout: Duration = 15.0
    also_reported: Literal["follow_up", "ignore", "digest"] = "follow_up"

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            signing_key(v.get_secret_value())  # raises a readable error
        return v


def encode_body(alerts: list[dict[str, Any]]) -> tuple[str, bytes]:
    """The (webhook-id, body) to send for these alerts: one payload, or a digest of several."""
    if len(alerts) == 1:
        payload: dict[str, Any] = alerts[0]
    else:
        payload = {"type": "digest", "id": digest_id(alerts), "alerts": alerts}
    msg_id = payload.get("id")
    if not isinstance(msg_id, str) or not msg_id:
        raise ValueError("payload has no id")
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return msg_id, body.encode("utf-8")


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks ``webhook-signature`` value for one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


class WebhookSender:
    """POSTs alerts to one configured URL through the shared aiohttp session."""

    def __init__(
        self,
        name: str,
        channel: WebhookChannel,
        session: aiohttp.ClientSession,
        *,
        allow_private_networks: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.channel = channel
        self.session = session
        self.allow_private_networks = allow_private_networks
        self._clock = clock
        self._key = signing_key(channel.secret.get_secret_value()) if channel.secret else None
        self._secrets = [v.get_secret_value() for v in channel.headers.values()]
        if channel.secret:
            self._secrets.append(channel.secret.get_secret_value())

    async def send(self, alerts: list[dict[str, Any]]) -> SendResult:
        from monitor.deliver.httppost import USER_AGENT, post_json

        if not alerts:
            return fail("nothing to send: no alerts given")
        try:
            msg_id, body = encode_body(alerts)
        except (TypeError, ValueError) as exc:
            return fail(f"payload cannot be encoded as JSON: {exc}")
        timestamp = int(self._clock())
        headers = {k: v.get_secret_value() for k, v in self.channel.headers.items()}
        lower = {k.lower() for k in headers}
        if "user-agent" not in lower:
            headers["User-Agent"] = USER_AGENT
        for k in list(headers):  # the protocol headers below are ours, never the config's
            if k.lower() in (
                "content-type",
                "webhook-id",
                "webhook-timestamp",
                "webhook-signature",
            ):
                del headers[k]
        headers["Content-Type"] = "application/json"
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = str(timestamp)
        if self._key is not None:
            headers["webhook-signature"] = sign(self._key, msg_id, timestamp, body)
        outcome = await post_json(
            self.session,
            self.channel.url,
            body,
            headers,
            time_limit=self.channel.timeout,
            allow_private_networks=self.allow_private_networks,
            secrets=self._secrets,
        )
        return outcome.result


def _describe(ch: WebhookChannel) -> str:
    signed = "signed" if ch.secret else "UNSIGNED (no secret)"
    extra = f", headers: {', '.join(ch.headers)}" if ch.headers else ""
    return f"webhook -> {mask_url(ch.url)} ({signed}{extra})"


def _sender(name: str, ch: WebhookChannel, ctx: SenderContext) -> WebhookSender:
    return WebhookSender(name, ch, ctx.session, allow_private_networks=ctx.allow_private_networks)


CHANNEL = ChannelType("webhook", WebhookChannel, _sender, _describe)
