"""Has a story changed enough to alert again (``realert_on: update``)?

Compared with the article that last alerted for the story (so one update alerts once, not
again with every copy of it): new numbers in the title (a death toll, a score, a count of
evacuees going up), or a watched place the earlier article did not match.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from monitor.stories.signature import Signature

_YEAR = re.compile(r"(19|20)\d\d")


@dataclass(frozen=True, slots=True)
class MaterialChange:
    new_numbers: tuple[str, ...]  # title numbers the earlier title did not have
    old_numbers: tuple[str, ...]  # the earlier title's numbers, for the message
    new_places: tuple[str, ...]  # matched places the earlier article did not match

    def describe(self) -> str:
        parts = []
        if self.new_numbers:
            was = ", ".join(self.old_numbers) or "none"
            parts.append(f"new numbers in the title: {', '.join(self.new_numbers)} (was {was})")
        if self.new_places:
            parts.append(f"new places: {', '.join(self.new_places)}")
        return "; ".join(parts)


def _numbers(sig: Signature) -> set[str]:
    # A bare year in a title ("2024 floods") is a label, not news.
    return {n for n in sig.title_numbers if not _YEAR.fullmatch(n)}


def material_change(
    alerted: Signature,
    new: Signature,
    *,
    alerted_places: Iterable[str] = (),
    new_places: Iterable[str] = (),
) -> MaterialChange | None:
    """What changed from the alerted article to ``new`` that an editor would want to hear
    about, or None. Places are the watchlist's matched place names, as the matcher reports
    them (compared case-insensitively)."""
    before = _numbers(alerted)
    fresh = tuple(sorted(_numbers(new) - before, key=lambda n: (len(n), n)))
    seen = {p.casefold() for p in alerted_places}
    places = tuple(dict.fromkeys(p for p in new_places if p.casefold() not in seen))
    if not fresh and not places:
        return None
    return MaterialChange(fresh, tuple(sorted(before, key=lambda n: (len(n), n))), places)
