"""The labelled story set in ``tests/data/stories/``: YAML files of story groups.

Each file is ``{split: dev|heldout, lang: xx, groups: [...]}``; a group is one story
(``story``: its name) with its ``articles``. A group may be the hard negative of another
(``hard_negative_of`` + ``negative_kind``): a different event that looks like it.

An article is written out in full (``title`` + ``text``, paragraphs separated by blank lines)
or derived from an earlier one (``from``) the way outlets change wire copy: its own ``title``,
``keep: N`` (the first N paragraphs: a trimmed ending), ``replace`` (pairs of exact strings,
every occurrence; a string that does not occur is an error), ``prepend`` / ``append``
(paragraphs added, e.g. a local angle). Derivations are applied here so the YAML stays
readable and every change between copies is visible.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from pathlib import Path
from typing import Any

import yaml

DATA = Path(__file__).resolve().parent / "data" / "stories"
KINDS = {"original", "syndicated", "trimmed", "local", "update", "rewrite"}
NEGATIVE_KINDS = {
    "later_event",
    "next_day_market",
    "other_match",
    "analysis",
    "same_town",
    "same_template",
}


@dataclass(frozen=True, slots=True)
class LabelledArticle:
    id: str
    story: str
    lang: str
    split: str
    host: str
    published: datetime
    title: str
    text: str
    kind: str


@dataclass(frozen=True, slots=True)
class Group:
    story: str
    lang: str
    split: str
    articles: tuple[LabelledArticle, ...]
    hard_negative_of: str | None = None
    negative_kind: str | None = None


class StorySetError(ValueError):
    pass


def _paragraphs(text: str) -> list[str]:
    return [" ".join(p.split()) for p in text.strip().split("\n\n") if p.strip()]


def _derive(raw: dict[str, Any], base: LabelledArticle, where: str) -> str:
    paras = _paragraphs(base.text)
    if "keep" in raw:
        keep = int(raw["keep"])
        if not 0 < keep < len(paras):
            raise StorySetError(f"{where}: keep {keep} of {len(paras)} paragraphs")
        paras = paras[:keep]
    text = "\n\n".join(paras)
    for old, new in raw.get("replace", []):
        if old not in text:
            raise StorySetError(f"{where}: replace {old!r}: not in the text")
        text = text.replace(old, new)
    parts = [*_paragraphs(raw.get("prepend", "")), text, *_paragraphs(raw.get("append", ""))]
    return "\n\n".join(p for p in parts if p)


def load_file(path: Path, seen: dict[str, LabelledArticle]) -> list[Group]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    split, lang = doc["split"], doc["lang"]
    if split not in {"dev", "heldout"}:
        raise StorySetError(f"{path.name}: split {split!r}")
    groups: list[Group] = []
    for g in doc["groups"]:
        story = g["story"]
        arts: list[LabelledArticle] = []
        for raw in g["articles"]:
            where = f"{path.name}: {story}/{raw.get('id')}"
            aid = raw["id"]
            if aid in seen:
                raise StorySetError(f"{where}: duplicate id")
            kind = raw.get("kind", "original" if "from" not in raw else "syndicated")
            if kind not in KINDS:
                raise StorySetError(f"{where}: kind {kind!r}")
            if "from" in raw:
                base = seen.get(raw["from"])
                if base is None:
                    raise StorySetError(f"{where}: from {raw['from']!r}: not an earlier article")
                text = _derive(raw, base, where)
            else:
                text = "\n\n".join(_paragraphs(raw["text"]))
            published = raw["published"]
            if not isinstance(published, datetime) or published.tzinfo is None:
                raise StorySetError(f"{where}: published must be a datetime with a zone")
            art = LabelledArticle(
                id=aid,
                story=story,
                lang=raw.get("lang", lang),
                split=split,
                host=raw["host"],
                published=published,
                title=" ".join(raw["title"].split()),
                text=text,
                kind=kind,
            )
            seen[aid] = art
            arts.append(art)
        neg_of, neg_kind = g.get("hard_negative_of"), g.get("negative_kind")
        if (neg_of is None) != (neg_kind is None) or (neg_kind and neg_kind not in NEGATIVE_KINDS):
            raise StorySetError(f"{path.name}: {story}: hard_negative_of needs a negative_kind")
        groups.append(Group(story, lang, split, tuple(arts), neg_of, neg_kind))
    return groups


def load(data: Path = DATA) -> list[Group]:
    """Every group of every file, in file order; story names and article ids are unique."""
    seen: dict[str, LabelledArticle] = {}
    groups: list[Group] = []
    for path in sorted(data.glob("*.yaml")):
        groups.extend(load_file(path, seen))
    names = [g.story for g in groups]
    if len(set(names)) != len(names):
        raise StorySetError("duplicate story names")
    for g in groups:
        if g.hard_negative_of and g.hard_negative_of not in names:
            raise StorySetError(
                f"{g.story}: hard_negative_of {g.hard_negative_of!r}: no such story"
            )
    return groups


def articles(groups: Iterable[Group]) -> list[LabelledArticle]:
    """All articles in publication order (ties by id): the order a daemon would see them."""
    return sorted((a for g in groups for a in g.articles), key=lambda a: (a.published, a.id))


# --- scores -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scores:
    pair_precision: float
    pair_recall: float
    pair_f1: float
    bcubed_precision: float
    bcubed_recall: float
    bcubed_f1: float


def _f1(p: float, r: float) -> float:
    return 0.0 if p + r == 0 else 2 * p * r / (p + r)


def score(gold: dict[str, str], predicted: dict[str, object]) -> Scores:
    """Pairwise and B-cubed precision/recall/F1 of a clustering (article id -> cluster) vs gold."""
    ids = sorted(gold)
    tp = fp = fn = 0
    for a, b in combinations(ids, 2):
        same_gold = gold[a] == gold[b]
        same_pred = predicted[a] == predicted[b]
        tp += same_gold and same_pred
        fp += same_pred and not same_gold
        fn += same_gold and not same_pred
    pp = tp / (tp + fp) if tp + fp else 1.0
    pr = tp / (tp + fn) if tp + fn else 1.0
    by_gold: dict[str, set[str]] = {}
    by_pred: dict[object, set[str]] = {}
    for i in ids:
        by_gold.setdefault(gold[i], set()).add(i)
        by_pred.setdefault(predicted[i], set()).add(i)
    bp = br = 0.0
    for i in ids:
        g, p = by_gold[gold[i]], by_pred[predicted[i]]
        both = len(g & p)
        bp += both / len(p)
        br += both / len(g)
    bp, br = bp / len(ids), br / len(ids)
    return Scores(pp, pr, _f1(pp, pr), bp, br, _f1(bp, br))
