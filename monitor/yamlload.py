"""Reading YAML that may be hostile: bounded size, depth and alias expansion, no duplicate keys.

A config reaches the daemon from a file anyone with write access (or a SIGHUP after a bad edit)
can change. PyYAML alone is not safe against it: nine levels of nine aliases ("billion laughs")
cost nothing to parse but explode into hundreds of millions of values for anything that walks
the result, and a thousand nested lists overflow the composer's recursion. So the text is
checked in three cheap passes before anything is built from it:

1. the event stream (iterative) bounds the nesting depth;
2. the node graph bounds the *expanded* size (aliases counted as often as they are used, with
   memoisation, so the count itself is linear) and finds duplicate keys;
3. only then is the data constructed, and non-finite numbers (``.inf``, ``.nan``) refused.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import yaml

MAX_BYTES = 16 * 1024 * 1024  # a 10,000-feed config is about 1 MB
MAX_DEPTH = 64
MAX_VALUES = 500_000  # values after alias expansion; a 10,000-feed config has ~60,000

Path = tuple[Any, ...]


class YamlError(Exception):
    """The text cannot be used; ``errors`` holds one readable line per problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


class Document:
    """Parsed YAML data with the line of every key and list item (``lines[path]``)."""

    def __init__(self, data: Any, lines: dict[Path, int]) -> None:
        self.data = data
        self.lines = lines

    def line(self, path: Path) -> int | None:
        """The line of ``path`` or of its nearest ancestor the text shows."""
        probe = path
        while probe:
            if probe in self.lines:
                return self.lines[probe]
            probe = probe[:-1]
        return None


def load(text: str) -> Document:
    """Parse ``text`` within the limits above; raise YamlError with every problem found."""
    if len(text) > MAX_BYTES:
        raise YamlError([f"the file is larger than {MAX_BYTES // (1024 * 1024)} MB"])
    try:
        _check_depth(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise YamlError([f"{where}YAML syntax error: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise YamlError([f"YAML error: {exc}"]) from None
    if root is None:
        return Document(None, {})
    errors: list[str] = []
    size = _expanded_size(root, {})
    if size > MAX_VALUES:
        raise YamlError(
            [
                f"the config expands to more than {MAX_VALUES:,} values (YAML aliases repeated "
                "too often); write it out without such aliases"
            ]
        )
    lines: dict[Path, int] = {}
    _walk(root, (), lines, errors, set())
    if errors:
        raise YamlError(errors)
    loader = yaml.SafeLoader(text)
    try:
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise YamlError([f"YAML error: {exc}"]) from None
    finally:
        loader.dispose()
    for path, value in _leaves(data, ()):
        if isinstance(value, float) and not math.isfinite(value):
            line = Document(None, lines).line(path)
            prefix = f"line {line}: " if line else ""
            errors.append(f"{prefix}{format_path(path)}: {value} is not a usable number")
    if errors:
        raise YamlError(errors)
    return Document(data, lines)


def format_path(path: Path) -> str:
    """``("watchlists", 3, "channels")`` -> ``watchlists[3].channels``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def _check_depth(text: str) -> None:
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark else "?"
                raise YamlError([f"line {line}: nested more than {MAX_DEPTH} levels deep"])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Values under ``node`` with every alias counted each time it is used (memoised)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = MAX_VALUES + 1  # a node inside itself (recursive alias) is refused as too big
    total = 1
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo) + _expanded_size(v, memo)
            if total > MAX_VALUES:
                break
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            total += _expanded_size(item, memo)
            if total > MAX_VALUES:
                break
    memo[key] = total
    return total


def _walk(
    node: yaml.Node, path: Path, lines: dict[Path, int], errors: list[str], seen: set[int]
) -> None:
    """Record lines and find duplicate keys; an aliased node is walked once."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else None
            line = key.start_mark.line + 1
            if name is not None and name != "<<":
                if name in first:
                    errors.append(
                        f"line {line}: {format_path((*path, name))}: duplicate key "
                        f"(first on line {first[name]}); remove one of them"
                    )
                else:
                    first[name] = line
            sub = (*path, name)
            lines.setdefault(sub, line)
            _walk(value, sub, lines, errors, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            sub = (*path, i)
            lines.setdefault(sub, item.start_mark.line + 1)
            _walk(item, sub, lines, errors, seen)


def _leaves(data: Any, path: Path) -> Iterator[tuple[Path, Any]]:
    stack: list[tuple[Path, Any]] = [(path, data)]
    seen: set[int] = set()
    while stack:
        p, value = stack.pop()
        if isinstance(value, dict | list):
            if id(value) in seen:
                continue
            seen.add(id(value))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            stack.extend(((*p, k), v) for k, v in items)
        else:
            yield p, value
