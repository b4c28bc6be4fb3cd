"""The decision rule: is this article a copy, rewrite or update of that one?

Pure functions of two signatures and their publication times, so any daemon, now or later,
reaches the same verdict from the stored rows. The thresholds and why they are where they
are: ``docs/matching.md``, section "Stories".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np

from monitor.stories.signature import Signature, fact_hash

# --- thresholds (docs/matching.md, "Stories") ----------------------------------------------
COPY_TEXT = 0.30  # word 3-shingle Jaccard at or above which two texts are one report
REWRITE_TEXT = 0.03  # below this a "rewrite" shares no phrasing at all: not a rewrite
REWRITE_FACTS = 0.60  # a rewrite keeps most facts ...
REWRITE_NAMES = 0.35  # ... and a good share of the names
REWRITE_GAP_HOURS = 36.0  # rewrites come within a day and a half of the report
LEAD_FACTS_MIN = 2  # both leads state at least this many facts for the lead test to apply
LEAD_SHARED = 0.34  # leads that name different days and share less than this are two events
TEMPLATE_FACTS = 0.50  # below this overall fact agreement, disjoint leads mean another event
MIN_FACTS_FOR_CONFLICT = 4  # fewer facts than this: too little to call a conflict

# Facts that say which day: weekdays and calendar dates.
_DAYS = frozenset(fact_hash(f"wd{d}") for d in range(1, 8)) | frozenset(
    fact_hash(f"md{m}-{d}") for m in range(1, 13) for d in range(1, 32)
)
_B16 = 1.0 / 65536.0  # chance agreement of two different 16-bit minima


def text_similarity(a: Signature, b: Signature) -> float:
    """Estimated Jaccard similarity of the two bodies' word 3-shingle sets."""
    if a.shingles == 0 or b.shingles == 0:
        return 0.0
    agree = float(np.count_nonzero(a.text == b.text)) / len(a.text)
    return max(0.0, (agree - _B16) / (1.0 - _B16))


def _jaccard(x: tuple[int, ...], y: tuple[int, ...]) -> float | None:
    if not x and not y:
        return None
    sx, sy = set(x), set(y)
    return len(sx & sy) / len(sx | sy)


@dataclass(frozen=True, slots=True)
class Evidence:
    """How two articles compare; ``verdict`` is ``"copy"``, ``"rewrite"`` or why not."""

    text: float  # estimated word 3-shingle Jaccard
    containment: float  # estimated share of the shorter text found in the longer one
    facts: float | None  # Jaccard of facts (None: neither has any)
    names: float | None  # Jaccard of names
    lead_overlap: float | None  # shared lead facts / the smaller lead (None: a lead has none)
    gap_hours: float
    verdict: str

    @property
    def joins(self) -> bool:
        return self.verdict in ("copy", "rewrite")


SHORT_TEXT_SHINGLES = 20  # fewer word triples than this: a title and a line, not an article


def _containment(t: float, na: int, nb: int) -> float:
    if na == 0 or nb == 0:
        return 0.0
    inter = t * (na + nb) / (1.0 + t)
    return min(1.0, inter / min(na, nb))


def compare(
    new: Signature, new_published: datetime, old: Signature, old_published: datetime
) -> Evidence:
    """The evidence that ``new`` reports the same event as ``old``, and the verdict."""
    t = text_similarity(new, old)
    facts = _jaccard(new.facts, old.facts)
    names = _jaccard(new.names, old.names)
    gap = abs((new_published - old_published).total_seconds()) / 3600.0
    lead = None
    if len(new.lead) >= LEAD_FACTS_MIN and len(old.lead) >= LEAD_FACTS_MIN:
        lead = len(set(new.lead) & set(old.lead)) / min(len(new.lead), len(old.lead))
    enough_facts = min(len(new.facts), len(old.facts)) >= MIN_FACTS_FOR_CONFLICT

    days_new, days_old = _DAYS.intersection(new.lead), _DAYS.intersection(old.lead)
    same_day = bool(days_new & days_old)
    if days_new and days_old and not same_day and (lead or 0.0) < LEAD_SHARED:
        verdict = "different event: the leads name different days"
    elif lead == 0.0 and enough_facts and (facts or 0.0) < TEMPLATE_FACTS:
        verdict = "different event: the leads share no fact"
    elif (
        min(new.shingles, old.shingles) < SHORT_TEXT_SHINGLES
        and new.title_numbers != old.title_numbers
        and (new.title_numbers or old.title_numbers)
    ):
        # Little text to go on (a title-only feed, a one-line summary): a headline template
        # with other numbers ("M 4.6 - 12 km NE of Ridgecrest" after "M 4.1 - 8 km W of
        # Ridgecrest", "Evacuation order for zone 3" after "... zone 2") is another event.
        verdict = "different event: short texts with other numbers in the title"
    elif t >= COPY_TEXT:
        verdict = "copy"
    elif t < REWRITE_TEXT:
        verdict = "no shared phrasing"
    elif facts is None or facts < REWRITE_FACTS:
        verdict = "too few shared facts for a rewrite"
    elif names is not None and names < REWRITE_NAMES:
        verdict = "too few shared names for a rewrite"
    elif gap > REWRITE_GAP_HOURS:
        verdict = "too far apart in time for a rewrite"
    else:
        verdict = "rewrite"
    return Evidence(
        text=t,
        containment=_containment(t, new.shingles, old.shingles),
        facts=facts,
        names=names,
        lead_overlap=lead,
        gap_hours=gap,
        verdict=verdict,
    )
