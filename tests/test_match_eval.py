"""Place matching measured on a labelled set (tests/data/places_eval.yaml): precision, recall.

The set holds short articles in several languages with the places a watchlist names and
whether a reader would want an alert: regions, towns of a few thousand people, local
spellings and scripts, namesakes with and without ``country:``, places named like common
words (used as words and as the place), places inside person names, decomposed and
full-width text. The floors below are the figures measured when the set was written (see
docs/matching.md); a change that lowers either fails here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from monitor.match import Document, Matcher
from monitor.settings import Watchlist

DATA = Path(__file__).parent / "data"
# (precision, recall) floors: the figures measured when each set was written
FLOORS = {"places_eval.yaml": (1.0, 0.983), "places_heldout.yaml": (0.945, 0.972)}


def load(name: str = "places_eval.yaml") -> list[dict[str, Any]]:
    return yaml.safe_load((DATA / name).read_text(encoding="utf-8"))


def run(cases: list[dict[str, Any]]) -> list[tuple[dict[str, Any], bool]]:
    """Each case with whether its watchlist matched (one matcher per distinct place list)."""
    matchers: dict[str, Matcher] = {}
    out = []
    for case in cases:
        key = repr(case["places"])
        if key not in matchers:
            matchers[key] = Matcher.build([Watchlist(name="w", places=case["places"])])
        doc = Document(title=case["title"], summary="", body=case["body"])
        out.append((case, "w" in matchers[key].match(doc)))
    return out


def scores(results: list[tuple[dict[str, Any], bool]]) -> tuple[float, float, int, int, int]:
    tp = sum(1 for c, got in results if got and c["match"])
    fp = sum(1 for c, got in results if got and not c["match"])
    fn = sum(1 for c, got in results if not got and c["match"])
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, tp, fp, fn


def test_the_set_is_big_and_varied() -> None:
    cases = load()
    assert len(cases) >= 150
    assert len({c["id"] for c in cases}) == len(cases)
    langs = {c["lang"] for c in cases}
    assert {"en", "es", "fr", "de", "ru", "uk"} <= langs
    kinds = {c["kind"] for c in cases}
    assert {"region", "town", "script", "namesake", "word", "person", "unicode"} <= kinds
    assert sum(c["match"] for c in cases) >= 60 and sum(not c["match"] for c in cases) >= 50


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_precision_and_recall_do_not_regress(name: str) -> None:
    results = run(load(name))
    precision, recall, *_ = scores(results)
    wrong = [f"{c['id']}: expected {c['match']}" for c, got in results if got != c["match"]]
    floor_p, floor_r = FLOORS[name]
    assert precision >= floor_p, (precision, wrong)
    assert recall >= floor_r, (recall, wrong)


if __name__ == "__main__":  # python tests/test_match_eval.py: the figures, per kind
    for name in sorted(FLOORS):
        res = run(load(name))
        p, r, tp, fp, fn = scores(res)
        print(f"{name}: {len(res)} articles, precision {p:.3f}, recall {r:.3f} ", end="")
        print(f"(tp {tp} fp {fp} fn {fn})")
        for kind in sorted({c["kind"] for c, _ in res}):
            sub = [(c, g) for c, g in res if c["kind"] == kind]
            p, r, tp, fp, fn = scores(sub)
            print(f"  {kind:9s} {len(sub):3d}: precision {p:.3f} recall {r:.3f} (fp {fp} fn {fn})")
        for c, got in res:
            if got != c["match"]:
                print(f"  WRONG {c['id']}: expected {c['match']}, got {got}")
