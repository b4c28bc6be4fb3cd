"""Everything `feedwatch run` needs before it polls, checked the same way by `feedwatch check`.

`check` and `run` share this module, so a config `check` accepts is one `run` accepts: the
config itself (``monitor.settings``), every watchlist compiled (terms parsed, places resolved in
the gazetteer) and the storage location usable, each problem with its path and YAML line, all
reported at once.
"""

from __future__ import annotations

import asyncio
from typing import Any

from monitor.settings import Config, ConfigError, Watchlist, format_errors

_Loc = tuple[Any, ...]


def check_watchlists(cfg: Config) -> Any:
    """The compiled matcher, or ConfigError naming every unusable term and place."""
    from monitor.match import Matcher
    from monitor.match.keywords import parse_term

    errors: list[tuple[_Loc, str]] = []
    for i, wl in enumerate(cfg.watchlists):
        for kind in ("keywords", "require", "exclude"):
            for j, raw in enumerate(getattr(wl, kind)):
                try:
                    parse_term(raw)
                except ValueError as exc:
                    errors.append((("watchlists", i, kind, j), str(exc)))
    if not errors:
        try:
            return Matcher.build(cfg.watchlists)
        except ValueError:
            pass  # find every culprit below, each with its own path
    for i, wl in enumerate(cfg.watchlists):
        for j, spec in enumerate(wl.places):
            try:
                Matcher.build([Watchlist(name=wl.name, places=[spec])])
            except ValueError as exc:
                message = str(exc).split(": ", 2)[-1]  # drop the builder's own "where" prefix
                errors.append((("watchlists", i, "places", j), message))
    if not errors:  # nothing per item: report what the whole build said
        try:
            return Matcher.build(cfg.watchlists)
        except ValueError as exc:
            errors.append((("watchlists",), str(exc)))
    raise ConfigError(format_errors(errors, cfg.source_doc, cfg.env_values), _source(cfg))


async def check_storage(cfg: Config) -> list[str]:
    """Problems with the storage location (unwritable, not a feedwatch database, a server that
    does not answer, a newer schema), found without creating or changing anything."""
    from storage import check_location

    problems = await check_location(cfg.storage.url)
    return format_errors(
        [(("storage", "url"), p) for p in problems], cfg.source_doc, cfg.env_values
    )


async def validate(cfg: Config) -> Any:
    """The whole check before a run: returns the compiled matcher, or raises ConfigError."""
    errors: list[str] = []
    matcher = None
    try:
        matcher = await asyncio.to_thread(check_watchlists, cfg)
    except ConfigError as exc:
        errors.extend(exc.errors)
    errors.extend(await check_storage(cfg))
    if errors:
        raise ConfigError(errors, _source(cfg))
    return matcher


def _source(cfg: Config) -> str | None:
    return str(cfg.path) if cfg.path else None
