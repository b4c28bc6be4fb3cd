"""Placing new articles in stories: signatures in the worker pool, decisions off the event loop.

The rule and the index are ``monitor.stories`` (pure). This module runs them for the daemon:

- A story is identified before anything is stored: an article's ``story_ref`` is a 56-bit hash
  of its identity (canonical URL, else feed and GUID), and a story's id is the ref of its first
  article. So the story's alert id (``alert_id(watchlist, "story:<id>")``) is known when the
  alert is built, and every copy of the story names the same one: storage keeps the first
  (``ON CONFLICT DO NOTHING``), which is what makes "one alert per story" hold even when two
  copies are stored at the same moment with the same decision.
- The :class:`StoryIndex` (the articles of the last window, in memory) lives on one thread of
  its own (it is not thread-safe, and a decision at 100,000 stories costs ~0.2 ms, its periodic
  merge tens of milliseconds). Before deciding, the rows other daemons stored that share a key
  with the new articles are read from storage and added, so daemons sharing one database see
  each other's stories (a copy stored by another daemon in the same instant may still start a
  story of its own: the window for that race is one poll's storage round trip).
- Only articles that match a watchlist get a signature (1.5 ms of CPU each: fingerprinting
  every item of a 10,000-feed first pass would cost minutes). An article that matches nothing
  is a story of its own; a copy that matches a watchlist joins the story of an earlier matching
  copy.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from monitor.logs import get_logger
from monitor.stories import StoryIndex, band_keys, fingerprint
from storage.base import Storage

log = get_logger(__name__)
T = TypeVar("T")


def story_ref(identity: str) -> int:
    """A 56-bit number for an article's identity: fits a BIGINT, stable across processes."""
    return int.from_bytes(hashlib.sha256(identity.encode("utf-8")).digest()[:7], "big")


def signatures(items: list[tuple[str, str]]) -> list[tuple[bytes, list[int]]]:
    """(signature bytes, LSH keys) of each (title, text): in a worker process."""
    out = []
    for title, text in items:
        sig = fingerprint(title, text).to_bytes()
        out.append((sig, band_keys(sig)))
    return out


@dataclass(frozen=True, slots=True)
class Placement:
    ref: int
    story_id: int
    joined: bool  # False: the article starts a story of its own


@dataclass(frozen=True, slots=True)
class NewMember:
    ref: int
    signature: bytes
    keys: list[int]
    published: datetime


class StoryDesk:
    """The daemon's story index, on a thread of its own."""

    def __init__(self, window: float) -> None:
        self.window = timedelta(seconds=window)
        self._index = StoryIndex(window=self.window)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="stories")

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def rebuild(self, storage: Storage, now: datetime) -> int:
        """Load the stories of the last window (at start: a restart keeps its stories)."""
        rows = await storage.story_rows(now - self.window * 2)

        def load() -> int:
            self._index = StoryIndex.rebuild(
                ((r.story_ref, r.story_id, r.signature, r.published) for r in rows),
                window=self.window,
            )
            return len(rows)

        n: int = await self._run(load)
        if n:
            log.info("stories loaded", articles=n, window_hours=self.window.total_seconds() / 3600)
        return n

    async def place(self, storage: Storage, members: Sequence[NewMember]) -> list[Placement]:
        """The story of each new article, in order (a copy later in the list can join an
        earlier one). Rows other daemons stored meanwhile are taken into account."""
        if not members:
            return []
        keys = sorted({k for m in members for k in m.keys})
        first = min(m.published for m in members)
        last = max(m.published for m in members)
        rows = await storage.story_candidates(keys, first - self.window, last + self.window)

        def decide() -> list[Placement]:
            index = self._index
            for r in rows:
                if r.story_ref not in index:
                    index.insert(r.story_ref, r.story_id, r.signature, r.published)
            out = []
            for m in members:
                d = index.add(m.ref, m.signature, m.published)
                out.append(Placement(m.ref, d.story_id, d.joined))
            return out

        placed: list[Placement] = await self._run(decide)
        return placed

    async def evict(self, storage: Storage, now: datetime) -> None:
        """Forget what is past every window, in memory and in storage's key index."""
        older = now - self.window * 2
        await self._run(self._index.evict, older)
        await storage.prune_story_keys(older)

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)
