"""Matching articles against watchlists: keywords, phrases, wildcards and gazetteer places."""

from monitor.match.engine import Document, Explanation, Finding, Match, Matcher, WatchlistError

__all__ = ["Document", "Explanation", "Finding", "Match", "Matcher", "WatchlistError"]
