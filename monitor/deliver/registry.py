"""Every channel type feedwatch knows: one line each.

The config's channel union, the sender factory, `check`'s summary and secret masking are all
built from this list. Adding a channel is one new module (config model, sender, description:
see ``monitor/deliver/channel.py``) and one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field

from monitor.deliver import apprise, console, email, slack, webhook
from monitor.deliver.channel import ChannelConfig, ChannelType

CHANNELS: tuple[ChannelType, ...] = (
    webhook.CHANNEL,
    slack.CHANNEL,
    email.CHANNEL,
    console.CHANNEL,
    apprise.CHANNEL,
)
BY_TYPE = {c.name: c for c in CHANNELS}
TYPE_NAMES = tuple(BY_TYPE)

# The config union, discriminated by `type:`, built from the list above (type checkers see the
# common base class, which is what code outside the channel modules may rely on).
if TYPE_CHECKING:
    AnyChannel = ChannelConfig
else:
    AnyChannel = Annotated[
        Union[tuple(c.config for c in CHANNELS)],  # noqa: UP007
        Field(discriminator="type"),
    ]


def channel_type(config: Any) -> ChannelType:
    kind = getattr(config, "type", None)
    if kind not in BY_TYPE:
        raise ValueError(f"unknown channel type {kind!r}")
    return BY_TYPE[kind]
