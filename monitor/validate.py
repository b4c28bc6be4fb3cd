"""Everything `feedwatch run` needs before it polls, checked the same way by `feedwatch check`.

`check` and `run` share this module, so a config `check` accepts is one `run` accepts: the
config itself (``monitor.settings``), every watchlist compiled (terms parsed, places resolved in
the gazetteer) and the storage location usable, each problem with its path and YAML line, all
reported at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from monitor.settings import Config, ConfigError, format_errors

_Loc = tuple[Any, ...]


def check_watchlists(cfg: Config) -> Any:
    """The compiled matcher, or ConfigError naming every unusable term and unknown place,
    each with its YAML line."""
    matcher, errors = _compile(cfg.watchlists)
    if not errors:
        return matcher
    raise ConfigError(format_errors(errors, cfg.source_doc, cfg.env_values), _source(cfg))


def raw_watchlist_errors(data: dict[str, Any]) -> list[tuple[_Loc, str]]:
    """Unusable terms and unknown places of every watchlist that is otherwise valid, read from
    a config that has other errors: `check` reports them together, not one stage at a time."""
    from monitor.settings import Watchlist

    raw = data.get("watchlists")
    valid: list[tuple[int, Watchlist]] = []
    for i, wl in enumerate(raw if isinstance(raw, list) else []):
        try:
            valid.append((i, Watchlist.model_validate(wl)))
        except Exception:  # its own errors are reported already
            continue
    if not valid:
        return []
    _, errors = _compile([wl for _, wl in valid])
    # Paths name positions among the valid watchlists: back to their places in the file.
    return [
        (("watchlists", valid[loc[1]][0], *loc[2:]), msg)
        if len(loc) >= 2 and loc[0] == "watchlists" and isinstance(loc[1], int)
        else (loc, msg)
        for loc, msg in errors
    ]


def _compile(watchlists: Sequence[Any]) -> tuple[Any, list[tuple[_Loc, str]]]:
    """(the compiled matcher, []) or (None, every unusable term and unknown place)."""
    from monitor.match import Matcher, WatchlistError

    try:
        return Matcher.build(watchlists), []
    except WatchlistError as exc:
        return None, [_located(line) for line in exc.errors]
    except ValueError as exc:  # anything else the builder refuses: one line, no path
        return None, [((), str(exc))]


_PATH_RE = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*): (.*)$", re.S)


def _located(line: str) -> tuple[_Loc, str]:
    """``watchlists[2].places[1]: unknown place 'X'`` -> (("watchlists", 2, "places", 1), ...)."""
    m = _PATH_RE.match(line)
    if not m:
        return (), line
    loc: list[Any] = []
    for name, index in re.findall(r"([A-Za-z_]\w*)|\[(\d+)\]", m.group(1)):
        loc.append(int(index) if index else name)
    return tuple(loc), m.group(2)


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
