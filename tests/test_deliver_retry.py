"""RetryPolicy and status classification: bounds, doubling, cap, Retry-After, giving up."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from monitor.deliver.retry import RetryPolicy, classify_status
from monitor.retry_after import parse_retry_after
from monitor.settings import DeliverySettings


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, "ok"),
        (201, "ok"),
        (204, "ok"),
        (299, "ok"),
        (301, "fail"),
        (302, "fail"),
        (307, "fail"),
        (308, "fail"),
        (400, "fail"),
        (401, "fail"),
        (403, "fail"),
        (404, "fail"),
        (408, "retry"),
        (410, "fail"),
        (413, "fail"),
        (422, "fail"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
        (599, "retry"),
        (100, "fail"),
    ],
)
def test_classify_status(status: int, verdict: str) -> None:
    assert classify_status(status) == verdict


def test_first_retry_within_first_retry_seconds() -> None:
    policy = RetryPolicy()
    rng = random.Random(1)
    delays = [policy.next_delay(1, None, rng) for _ in range(500)]
    assert all(1.0 <= d <= 5.0 for d in delays)
    assert max(delays) > 4.5 and min(delays) < 1.5  # jitter spreads over the whole window


def test_ceiling_doubles_then_caps() -> None:
    policy = RetryPolicy(first_retry=5, max_backoff=3600)
    ceilings = [policy.ceiling(n) for n in range(1, 14)]
    assert ceilings[:5] == [5, 10, 20, 40, 80]
    assert ceilings[-1] == 3600 and max(ceilings) == 3600
    for a, b in itertools.pairwise(ceilings):
        assert b == min(2 * a, 3600)
    assert policy.ceiling(10_000) == 3600  # no overflow for absurd attempt counts


def test_delays_within_bounds_and_growing() -> None:
    policy = RetryPolicy(first_retry=5, max_backoff=3600)
    rng = random.Random(42)
    previous_max = 0.0
    for attempts in range(1, 12):
        ceiling = policy.ceiling(attempts)
        samples = [policy.next_delay(attempts, None, rng) for _ in range(300)]
        assert all(min(1.0, ceiling) <= d <= ceiling for d in samples)
        # the observed maximum roughly doubles until the cap
        assert max(samples) > 0.9 * ceiling
        assert max(samples) >= previous_max * 1.5 or ceiling == 3600
        previous_max = max(samples)


def test_retry_after_is_never_undercut() -> None:
    policy = RetryPolicy()
    rng = random.Random(7)
    for attempts in (1, 2, 5):
        for _ in range(100):
            assert policy.next_delay(attempts, 30.0, rng) >= 30.0
    # a short Retry-After does not shorten the backoff
    assert all(policy.next_delay(8, 0.5, rng) >= 1.0 for _ in range(50))
    big = [policy.next_delay(8, 2.0, rng) for _ in range(200)]
    assert max(big) > 100


def test_absurd_retry_after_is_clamped_to_max_backoff() -> None:
    policy = RetryPolicy(max_backoff=3600)
    assert policy.next_delay(1, 10**9, random.Random(0)) == 3600
    assert policy.next_delay(1, float("inf"), random.Random(0)) <= 5.0  # non-finite: ignored


def test_gives_up_only_after_retry_for() -> None:
    policy = RetryPolicy(retry_for=86400)
    first = datetime(2024, 1, 3, 10, 0, tzinfo=UTC)
    assert not policy.gives_up(first, first)
    assert not policy.gives_up(first, first + timedelta(hours=23, minutes=59, seconds=59))
    assert policy.gives_up(first, first + timedelta(days=1))
    assert policy.gives_up(first, first + timedelta(days=3))
    # naive datetimes are taken as UTC rather than raising
    assert not policy.gives_up(first.replace(tzinfo=None), first + timedelta(hours=1))


def test_from_settings_and_validation() -> None:
    s = DeliverySettings.model_validate(
        {"first_retry": "2s", "max_backoff": "10m", "retry_for": "2d"}
    )
    policy = RetryPolicy.from_settings(s)
    assert (policy.first_retry, policy.max_backoff, policy.retry_for) == (2, 600, 172800)
    assert RetryPolicy.from_settings(DeliverySettings()) == RetryPolicy()
    with pytest.raises(ValueError, match="first_retry"):
        RetryPolicy(first_retry=0)
    with pytest.raises(ValueError, match="max_backoff"):
        RetryPolicy(first_retry=10, max_backoff=5)


def test_parse_retry_after() -> None:
    now = datetime(2024, 1, 3, 10, 0, tzinfo=UTC)
    assert parse_retry_after("120") == 120
    assert parse_retry_after(" 7 ") == 7
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(hours=1), usegmt=True), now) == 0
    assert parse_retry_after("-5") is None  # unusable: the policy's own backoff applies
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None
