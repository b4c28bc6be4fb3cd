"""Matching articles against watchlists: keywords, phrases, wildcards and gazetteer places."""

from monitor.match.engine import Document, Match, Matcher

__all__ = ["Document", "Match", "Matcher"]
