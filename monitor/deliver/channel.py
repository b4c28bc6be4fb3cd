"""What a channel type declares about itself, so one file (and one registry line) adds a channel.

A channel module defines its config model (a :class:`ChannelConfig`, whose ``type`` literal is
its name in the YAML), a sender, and how ``feedwatch check`` describes a configured channel. Its
secret fields are the ones typed ``SecretStr``: every such value is masked wherever feedwatch
prints or logs. Heavy libraries (aiohttp, aiosmtplib, apprise) are imported by senders when they
send, so reading a config stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr

from monitor.configtypes import Digest, Model

if TYPE_CHECKING:
    import aiohttp

    from monitor.deliver.base import Sender


class ChannelConfig(Model):
    """Settings every channel has."""

    type: str
    digest: Digest = None  # one message per period instead of one per alert
    concurrency: int = Field(4, ge=1, le=256)  # deliveries in flight on this channel
    rate: float | None = Field(None, gt=0)  # messages per second at most
    # A later copy of a story this channel already alerted: a follow-up event, nothing, or a
    # line in the next digest. Webhooks default to follow_up, the others to ignore.
    also_reported: Literal["follow_up", "ignore", "digest"] = "ignore"


@dataclass(frozen=True)
class SenderContext:
    """What a sender may use: the shared HTTP session (SSRF-guarded) and the network policy."""

    session: aiohttp.ClientSession
    allow_private_networks: bool


@dataclass(frozen=True)
class ChannelType:
    name: str
    config: type[ChannelConfig]
    sender: Callable[[str, Any, SenderContext], Sender]
    describe: Callable[[Any], str]


def secret_values(model: Model) -> Iterator[str]:
    """Every ``SecretStr`` value in a model (also inside lists and dicts)."""
    for name in type(model).model_fields:
        yield from _secrets_in(getattr(model, name))


def _secrets_in(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        if value.get_secret_value():
            yield value.get_secret_value()
    elif isinstance(value, dict):
        for v in value.values():
            yield from _secrets_in(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _secrets_in(v)
