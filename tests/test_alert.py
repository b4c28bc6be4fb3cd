"""The alert payload: one typed object whose JSON is the contract's webhook payload exactly."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from monitor.alert import AlertPayload, ArticleInfo, MatchInfo, alert_id, sample_alert
from monitor.logs import register_secrets


def test_json_is_the_contract_shape_in_the_contract_order() -> None:
    p = AlertPayload(
        id=alert_id("wildfire-evacuations", "https://example.org/a"),
        watchlist="wildfire-evacuations",
        article=ArticleInfo(
            url="https://example.org/a",
            title="Villages evacuated",
            published=datetime(2024, 1, 3, 10, 0, tzinfo=UTC),
            feed="Example World",
            summary="Residents were told to leave.",
        ),
        matches=(
            MatchInfo(
                "keyword", "evacuation order", "evacuation order", "...an evacuation order..."
            ),
        ),
    )
    out = p.to_json()
    assert list(out) == ["type", "id", "watchlist", "article", "matches"]
    assert list(out["article"]) == ["url", "title", "published", "feed", "summary"]
    assert list(out["matches"][0]) == ["kind", "term", "text", "snippet"]
    assert out["type"] == "match" and out["id"].startswith("msg_") and len(out["id"]) == 36
    assert out["article"]["published"] == "2024-01-03T10:00:00Z"
    assert json.loads(json.dumps(out)) == out  # plain JSON types only
    # Stable per (watchlist, article): the webhook-id never changes between retries or runs.
    assert out["id"] == alert_id("wildfire-evacuations", "https://example.org/a")
    assert out["id"] != alert_id("other", "https://example.org/a")


def test_what_reaches_a_receiver_is_bounded_and_config_secrets_are_masked() -> None:
    register_secrets(["desk-secret-0x42"])
    p = AlertPayload(
        id="msg_x",
        watchlist="w",
        article=ArticleInfo(None, "T" * 5000, None, "Desk desk-secret-0x42", "S" * 50_000),
        matches=(MatchInfo("keyword", "desk-secret-0x42", "found", "x" * 5000),),
    )
    out = p.to_json()
    assert len(out["article"]["title"]) == 500 and out["article"]["title"].endswith("…")
    assert len(out["article"]["summary"]) == 1000
    assert out["article"]["feed"] == "Desk ***" and out["matches"][0]["term"] == "***"
    assert len(out["matches"][0]["snippet"]) == 600
    assert out["article"]["url"] is None and out["article"]["published"] is None


def test_test_alert_is_a_real_payload() -> None:
    out = sample_alert("ops-hook", datetime(2026, 1, 1, tzinfo=UTC), "abc123").to_json()
    assert out["id"] == "msg_test_abc123" and out["type"] == "match"
    assert "ops-hook" in out["article"]["summary"]
