"""When to try a failed delivery again, and when to stop: one policy shared by every channel.

Backoff: the n-th retry waits a random time in ``[min(1 s, ceiling), ceiling]`` where
``ceiling = min(max_backoff, first_retry * 2 ** (n - 1))`` ("full jitter", so many alerts that
failed together do not retry together; the 1 s floor avoids hammering a receiver that just
failed). With the defaults the first retry comes within 5 s, the ceiling doubles each attempt
and tops out at an hour.

Retry-After: the delay is never shorter than what the receiver asked for, up to
``max_backoff``. A longer Retry-After (a day, a year, a date far ahead) is clamped to
``max_backoff``: we then ask again once an hour at most, which costs the receiver one
request per hour and keeps an alert from silently waiting past ``retry_for``.

Giving up: a retryable failure is given up only once ``retry_for`` (default 24 h) has passed
since the first attempt, so every alert is tried for at least that long.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from monitor.settings import DeliverySettings

_MIN_DELAY = 1.0


def classify_status(status: int) -> Literal["ok", "retry", "fail"]:
    """2xx ok; 5xx, 408 and 429 retry; anything else (3xx: redirects are not followed) fails."""
    if 200 <= status < 300:
        return "ok"
    if 500 <= status < 600 or status in (408, 429):
        return "retry"
    return "fail"


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, Retry-After honoured, give up after ``retry_for``."""

    first_retry: float = 5.0
    max_backoff: float = 3600.0
    retry_for: float = 86400.0

    def __post_init__(self) -> None:
        for name in ("first_retry", "max_backoff", "retry_for"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"RetryPolicy.{name} must be a positive number of seconds")
        if self.max_backoff < self.first_retry:
            raise ValueError("RetryPolicy.max_backoff must be at least first_retry")

    def ceiling(self, attempts: int) -> float:
        """The longest wait after ``attempts`` failed attempts (1 = the first attempt failed)."""
        n = max(1, attempts)
        if n > 64:  # 2**63 * first_retry is past any cap; avoid float overflow
            return self.max_backoff
        return min(self.max_backoff, self.first_retry * 2.0 ** (n - 1))

    def next_delay(
        self, attempts: int, retry_after: float | None, rng: random.Random | None = None
    ) -> float:
        """Seconds to wait before the next attempt, after ``attempts`` failed attempts."""
        ceiling = self.ceiling(attempts)
        floor = min(_MIN_DELAY, ceiling)
        delay = (rng or random).uniform(floor, ceiling)
        if retry_after is not None and math.isfinite(retry_after) and retry_after > 0:
            delay = max(delay, min(retry_after, self.max_backoff))
        return delay

    def gives_up(self, first_attempt: datetime, now: datetime) -> bool:
        """True once ``retry_for`` seconds have passed since the first attempt (not before)."""
        return (_aware(now) - _aware(first_attempt)).total_seconds() >= self.retry_for

    @classmethod
    def from_settings(cls, s: DeliverySettings) -> RetryPolicy:
        return cls(first_retry=s.first_retry, max_backoff=s.max_backoff, retry_for=s.retry_for)
