"""Configuration: YAML -> validated, immutable models.

Nothing else in feedwatch reads YAML or the environment. Every error names the key's path
(``watchlists[3].chanels: unknown key``) and, where the YAML shows it, the line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from monitor import __version__, yamlload

DEFAULT_CONFIG_PATH = Path("config/feedwatch.yaml")
DEFAULT_USER_AGENT = f"feedwatch/{__version__} (+https://github.com/feedwatch/feedwatch)"


class ConfigError(Exception):
    """A config that cannot be used; ``errors`` holds one readable line per problem."""

    def __init__(self, errors: list[str], source: str | None = None) -> None:
        self.errors = errors
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + e for e in errors))


from monitor.configtypes import (  # noqa: E402 - re-exported: the rest of feedwatch imports them here
    MAX_DURATION,
    Digest,
    DigestSpec,
    Duration,
    HttpUrl,
    Interval,
    Size,
    check_http_url,
    format_duration,
    hide_userinfo,
    mask_url,
    parse_duration,
    parse_size,
    signing_key,
)
from monitor.configtypes import Model as _Model  # noqa: E402
from monitor.deliver.apprise import AppriseChannel  # noqa: E402
from monitor.deliver.console import ConsoleChannel  # noqa: E402
from monitor.deliver.email import EmailChannel  # noqa: E402
from monitor.deliver.registry import TYPE_NAMES, AnyChannel  # noqa: E402
from monitor.deliver.slack import SlackChannel  # noqa: E402
from monitor.deliver.webhook import WebhookChannel  # noqa: E402

__all__ = [
    "MAX_DURATION", "AppriseChannel", "ConsoleChannel", "Digest", "DigestSpec", "Duration",
    "EmailChannel", "HttpUrl", "Interval", "Size", "SlackChannel", "WebhookChannel",
    "check_http_url", "format_duration", "hide_userinfo", "mask_url", "parse_duration",
    "parse_size", "signing_key",
]  # fmt: skip


class StorageSettings(_Model):
    url: str = "data/feedwatch.db"
    # Article text older than this is dropped (the article's identity stays, so nothing re-alerts);
    # 0 keeps it forever.
    keep_text: Duration = 30 * 86400.0

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        scheme = v.split("://", 1)[0].lower() if "://" in v else ""
        if scheme and scheme != "sqlite" and not scheme.startswith(("postgres", "postgresql")):
            # Only the scheme is echoed: the rest may hold a password.
            raise ValueError(
                f"{scheme}:// is not a storage this version knows: use a file path, "
                "sqlite:///path or postgresql://user:password@host/db"
            )
        return v

    @property
    def backend(self) -> Literal["sqlite", "postgresql"]:
        return "postgresql" if self.url.lower().startswith("postgres") else "sqlite"

    @property
    def sqlite_path(self) -> Path:
        url = self.url
        if url.startswith("sqlite:///"):
            url = url[len("sqlite:///") :]
        elif url.startswith("sqlite://"):
            url = url[len("sqlite://") :]
        return Path(url)


class FetchSettings(_Model):
    timeout: Duration = 20.0
    idle_timeout: Duration = 15.0  # no byte for this long aborts a request (slow drip)
    max_bytes: Size = 5 * 1024 * 1024
    concurrency: int = Field(64, ge=1, le=4096)
    per_host: int = Field(2, ge=1, le=256)
    per_host_delay: Duration = 0.0  # minimum gap between request starts to one host
    max_redirects: int = Field(10, ge=0, le=30)
    user_agent: str = DEFAULT_USER_AGENT
    allow_private_networks: bool = False


class ExtractionSettings(_Model):
    timeout: Duration = 15.0  # per page, inside the worker process
    workers: int = Field(0, ge=0, le=64)  # 0 = one per core


class Defaults(_Model):
    interval: Interval = 900.0
    min_interval: Duration = 300.0  # bounds for `interval: auto`
    max_interval: Duration = 86400.0
    extract: bool = True
    max_age: Duration = 172800.0
    # New article pages fetched per feed and poll at most; the rest keep the feed's summary (a
    # feed of 20,000 undated items must not cost 20,000 page fetches in one poll).
    max_pages_per_poll: int = Field(50, ge=0, le=10_000)


class DeliverySettings(_Model):
    drain_seconds: Duration = 30.0
    retry_for: Duration = 86400.0  # give up on a retryable failure only after this long
    first_retry: Duration = 5.0
    max_backoff: Duration = 3600.0


def _listen(value: Any) -> str:
    """``host:port`` (``[::1]:9308`` for IPv6); a bare port listens on 127.0.0.1."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"127.0.0.1:{value}"
    if not isinstance(value, str):
        raise ValueError("expected host:port, such as 127.0.0.1:9308")
    host, port = split_listen(value)
    if not 0 <= port < 65536:  # 0: any free port (the log says which)
        raise ValueError(f"{value!r}: the port must be between 0 and 65535")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_listen(value: str) -> tuple[str, int]:
    text = value.strip()
    if text.isdigit():
        return "127.0.0.1", int(text)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{value!r} is not host:port (such as 127.0.0.1:9308)")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ServerSettings(_Model):
    """The daemon's HTTP server: /metrics, /healthz, /readyz and the dashboard."""

    listen: Annotated[str, BeforeValidator(_listen)] = "127.0.0.1:9308"
    token: SecretStr | None = None  # bearer token; required when listening beyond loopback

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> ServerSettings:
        host, _ = split_listen(self.listen)
        if not is_loopback(host) and not (self.token and self.token.get_secret_value()):
            raise ValueError(
                f"listen: {self.listen} is reachable from other machines, so server.token is "
                'required (set token: "${FEEDWATCH_TOKEN}")'
            )
        if self.token is not None and len(self.token.get_secret_value()) < 16:
            raise ValueError("token: use at least 16 characters (e.g. `openssl rand -hex 24`)")
        return self


class FeedConfig(_Model):
    url: HttpUrl
    # feed: RSS/Atom/RDF/JSON Feed; sitemap: a news sitemap or index; page: a section page
    type: Literal["feed", "sitemap", "page"] = "feed"
    selector: str | None = None  # page: CSS selector of the article links (else a heuristic)
    pattern: str | None = None  # page: a regular expression article URLs must match
    name: str | None = None
    interval: Interval | None = None
    extract: bool | None = None
    max_age: Duration | None = None
    max_pages_per_poll: int | None = Field(None, ge=0, le=10_000)
    tags: list[str] = Field(default_factory=list)
    enabled: bool = True

    @field_validator("selector")
    @classmethod
    def _selector(cls, v: str | None) -> str | None:
        if v is not None:
            from monitor.sectionpage import check_selector

            check_selector(v)
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            from monitor.sectionpage import check_pattern

            check_pattern(v)
        return v

    @model_validator(mode="after")
    def _page_only(self) -> FeedConfig:
        if self.type != "page" and (self.selector or self.pattern):
            raise ValueError("selector and pattern apply to type: page only")
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("a feed name cannot be empty")
        return v.strip() if v else v


Channel = AnyChannel


class PlaceSpec(_Model):
    name: str
    country: str | None = None  # ISO 3166 alpha-2 code or country name
    within_km: float | None = Field(None, gt=0, le=2000)
    country_wide: bool = False


def _place(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class Watchlist(_Model):
    name: str
    keywords: list[str] = Field(default_factory=list)
    places: list[Annotated[PlaceSpec, BeforeValidator(_place)]] = Field(default_factory=list)
    require: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    feeds: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    digest: Digest = None
    # A story that alerted may alert again when it changes materially (new numbers in the
    # title, a new place matched): `update`. Default: once per story.
    realert_on: Literal["none", "update"] = "none"

    @field_validator("keywords", "require", "exclude")
    @classmethod
    def _terms(cls, v: list[str]) -> list[str]:
        out = []
        for term in v:
            if not isinstance(term, str) or not term.strip() or not term.strip("*").strip():
                raise ValueError(f"{term!r} is not a usable term")
            out.append(term.strip())
        return out


class StoriesSettings(_Model):
    """Copies of one report across outlets form one story; a watchlist alerts once per story."""

    enabled: bool = True
    window: Duration = 48 * 3600.0  # a copy joins a story first reported within this


class Config(_Model):
    storage: StorageSettings = StorageSettings()
    fetch: FetchSettings = FetchSettings()
    extraction: ExtractionSettings = ExtractionSettings()
    defaults: Defaults = Defaults()
    delivery: DeliverySettings = DeliverySettings()
    server: ServerSettings | None = None  # absent: no HTTP server
    stories: StoriesSettings = StoriesSettings()
    feeds_from: list[Path] = Field(default_factory=list)
    feeds: list[FeedConfig] = Field(default_factory=list)
    channels: dict[str, Channel] = Field(default_factory=dict)
    watchlists: list[Watchlist] = Field(default_factory=list)
    path: Path | None = Field(None, exclude=True)  # where it was loaded from

    _env_values: frozenset[str] = PrivateAttr(default_factory=frozenset)
    _doc: Any = PrivateAttr(default=None)

    @property
    def env_values(self) -> frozenset[str]:
        """Values taken from ``${VAR}``: treated as secrets wherever feedwatch prints."""
        return self._env_values

    @property
    def source_doc(self) -> yamlload.Document | None:
        """The parsed YAML, for the line of a key in later checks (watchlists, storage)."""
        return self._doc

    # -- helpers used by the daemon
    def feed_interval(self, feed: FeedConfig) -> float | Literal["auto"]:
        return feed.interval if feed.interval is not None else self.defaults.interval

    def feed_extract(self, feed: FeedConfig) -> bool:
        return feed.extract if feed.extract is not None else self.defaults.extract

    def feed_max_age(self, feed: FeedConfig) -> float:
        return feed.max_age if feed.max_age is not None else self.defaults.max_age

    def feed_max_pages(self, feed: FeedConfig) -> int:
        if feed.max_pages_per_poll is not None:
            return feed.max_pages_per_poll
        return self.defaults.max_pages_per_poll

    def channel(self, name: str) -> Any:
        return self.channels[name]


# --------------------------------------------------------------------------- loading

_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
# Where the database goes when `storage.url` is not set: beside the config file, unless the
# environment names a data directory (the container image sets it to /var/lib/feedwatch).
DATA_DIR_ENV = "FEEDWATCH_DATA_DIR"
DEFAULT_DB = Path("data") / "feedwatch.db"

_Loc = tuple[Any, ...]


def _interpolate(
    node: Any, path: _Loc, env: dict[str, str], errors: list[tuple[_Loc, str]], used: set[str]
) -> Any:
    """Replace ``${VAR}`` from ``env``; every value taken from it is remembered in ``used``
    (they are masked wherever feedwatch prints or logs)."""
    if isinstance(node, str):
        if "${" not in node:
            return node

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                used.add(env[name])
                return env[name]
            if default is not None:
                return default
            errors.append((path, f"environment variable {name} is not set"))
            return ""

        return _VAR_RE.sub(repl, node)
    if isinstance(node, dict):
        return {k: _interpolate(v, (*path, k), env, errors, used) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, (*path, i), env, errors, used) for i, v in enumerate(node)]
    return node


_CHANNEL_TYPES = TYPE_NAMES

# pydantic's error types in the project's own words (its own text names Python types).
_PLAIN_MESSAGES = {
    "dict_type": "expected a mapping (key: value pairs)",
    "model_type": "expected a mapping (key: value pairs)",
    "model_attributes_type": "expected a mapping (key: value pairs)",
    "list_type": "expected a list",
    "string_type": "expected text",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "finite_number": "expected a finite number",
    "path_type": "expected a file path",
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
    "union_tag_invalid": f"type must be one of {', '.join(_CHANNEL_TYPES)}",
    "union_tag_not_found": f"type must be one of {', '.join(_CHANNEL_TYPES)}",
    "literal_error": None,  # pydantic's text lists the allowed values: kept, reworded below
    "too_short": None,
}


def _plain_message(err: Any) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        words = {
            "greater_than_equal": "at least",
            "greater_than": "more than",
            "less_than_equal": "at most",
            "less_than": "less than",
        }[kind]
        bound = next(iter(ctx.values()), "")
        return f"must be {words} {bound}"
    if kind == "literal_error":
        return "must be one of " + str(ctx.get("expected", "")).replace("'", "")
    if kind == "too_short":
        return "cannot be empty"
    if kind == "value_error":
        return str(ctx.get("error", err["msg"])).removeprefix("Value error, ")
    plain = _PLAIN_MESSAGES.get(kind)
    if plain:
        return plain
    return str(err["msg"]).removeprefix("Value error, ")


def _pydantic_errors(exc: ValidationError) -> list[tuple[_Loc, str]]:
    out: list[tuple[_Loc, str]] = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        # Drop the tags pydantic inserts into paths (channels.x.webhook.url, function-after...).
        clean = tuple(
            p
            for i, p in enumerate(loc)
            if not (i == 2 and loc[0] == "channels" and p in _CHANNEL_TYPES)
            and not (isinstance(p, str) and p.startswith(("function-", "str", "float", "literal")))
        )
        out.append((clean, _plain_message(err)))
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _cross_reference_errors(data: dict[str, Any]) -> list[tuple[_Loc, str]]:
    """Duplicate names, undefined channels and feeds, read from the raw data so they are found
    together with type errors elsewhere (not only once everything else validates)."""
    errors: list[tuple[_Loc, str]] = []
    feeds: list[Any] = _as_list(data.get("feeds"))
    names: dict[str, int] = {}
    urls: dict[str, int] = {}
    tags: set[str] = set()
    for i, feed in enumerate(feeds):
        if not isinstance(feed, dict):
            continue
        name = feed.get("name")
        if isinstance(name, str) and name.strip():
            name = name.strip()
            if name in names:
                errors.append(
                    (
                        ("feeds", i, "name"),
                        f"duplicate feed name {name!r} (also feeds[{names[name]}])",
                    )
                )
            else:
                names[name] = i
        url = feed.get("url")
        if isinstance(url, str):
            url = url.strip()
            if url in urls:
                errors.append(
                    (("feeds", i, "url"), f"duplicate feed URL (also feeds[{urls[url]}])")
                )
            else:
                urls[url] = i
        if isinstance(feed.get("tags"), list):
            tags.update(t for t in feed["tags"] if isinstance(t, str))
    raw_channels = data.get("channels")
    channels: dict[str, Any] = raw_channels if isinstance(raw_channels, dict) else {}
    watchlists = _as_list(data.get("watchlists"))
    seen: dict[str, int] = {}
    for i, wl in enumerate(watchlists):
        if not isinstance(wl, dict):
            continue
        name = wl.get("name")
        if isinstance(name, str):
            if name in seen:
                errors.append(
                    (
                        ("watchlists", i, "name"),
                        f"duplicate watchlist name {name!r} (also watchlists[{seen[name]}])",
                    )
                )
            else:
                seen[name] = i
        for j, ch in enumerate(_as_list(wl.get("channels"))):
            if isinstance(ch, str) and ch not in channels:
                known = ", ".join(channels) or "none defined"
                errors.append(
                    (
                        ("watchlists", i, "channels", j),
                        f"undefined channel {ch!r} (channels: {known})",
                    )
                )
        for j, ref in enumerate(_as_list(wl.get("feeds"))):
            if not isinstance(ref, str):
                continue
            if ref.startswith("tag:"):
                if ref[4:] not in tags:
                    errors.append((("watchlists", i, "feeds", j), f"no feed has tag {ref[4:]!r}"))
            elif ref not in names:
                errors.append((("watchlists", i, "feeds", j), f"undefined feed {ref!r}"))
    return errors


def _read_opml(path: Path) -> list[dict[str, Any]]:
    """Feeds from an OPML file; a folder outline's title becomes a tag."""
    try:
        tree = ET.parse(path)
    except FileNotFoundError:
        raise ValueError(f"OPML file not found: {path}") from None
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not valid OPML ({exc})") from None
    body = tree.getroot().find("body")
    feeds: list[dict[str, Any]] = []

    def walk(node: ET.Element, tags: list[str]) -> None:
        for child in node.findall("outline"):
            url = child.get("xmlUrl") or child.get("xmlurl")
            title = child.get("title") or child.get("text")
            if url:
                feed: dict[str, Any] = {"url": url}
                if title:
                    feed["name"] = title.strip()
                cats = [
                    c.strip().strip("/")
                    for c in (child.get("category") or "").split(",")
                    if c.strip()
                ]
                if tags or cats:
                    feed["tags"] = list(dict.fromkeys([*tags, *cats]))
                feeds.append(feed)
            else:
                walk(child, [*tags, title] if title else tags)

    if body is not None:
        walk(body, [])
    return feeds


def resolve_config_path(explicit: str | os.PathLike[str] | None) -> Path:
    if explicit:
        return Path(explicit)
    if env := os.environ.get("FEEDWATCH_CONFIG"):
        return Path(env)
    return DEFAULT_CONFIG_PATH


def load_config(
    path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None
) -> Config:
    """Read, interpolate and validate a config file; raise ConfigError with every problem."""
    cfg_path = resolve_config_path(path)
    source = str(cfg_path)
    try:
        size = cfg_path.stat().st_size
        if size > yamlload.MAX_BYTES:
            raise ConfigError(
                [f"the file is larger than {yamlload.MAX_BYTES // (1024 * 1024)} MB"], source
            )
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            ["config file not found (set --config or FEEDWATCH_CONFIG)"], source
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read config: {exc}"], source) from None
    return load_config_text(
        text, base_dir=cfg_path.resolve().parent, source=source, env=env, path=cfg_path
    )


def _relative_paths(data: dict[str, Any], base_dir: Path, env: dict[str, str]) -> None:
    """Paths in the config are relative to the config file; the default database too."""
    storage = data.get("storage")
    if storage is None:
        storage = data["storage"] = {}
    if isinstance(storage, dict) and "url" not in storage:
        data_dir = env.get(DATA_DIR_ENV)
        storage["url"] = str(
            Path(data_dir) / DEFAULT_DB.name if data_dir else base_dir / DEFAULT_DB
        )
    if isinstance(storage, dict) and isinstance(storage.get("url"), str):
        url = storage["url"]
        if url != ":memory:" and ("://" not in url or url.startswith("sqlite:")):
            raw = url.removeprefix("sqlite:///").removeprefix("sqlite://")
            if raw and not Path(raw).is_absolute():
                storage["url"] = os.path.normpath(base_dir / raw)
    channels = data.get("channels")
    for ch in channels.values() if isinstance(channels, dict) else ():
        if (
            isinstance(ch, dict)
            and isinstance(ch.get("ca_file"), str)
            and not Path(ch["ca_file"]).is_absolute()
        ):
            ch["ca_file"] = str(base_dir / ch["ca_file"])


def _opml_feeds(data: dict[str, Any], base_dir: Path, errors: list[tuple[_Loc, str]]) -> None:
    opml = data.get("feeds_from") or []
    if isinstance(opml, str):
        opml = [opml]
        data["feeds_from"] = opml
    feeds = data.get("feeds") or []
    if not isinstance(opml, list) or not isinstance(feeds, list):
        return
    known = {f.get("url") for f in feeds if isinstance(f, dict)}
    for i, name in enumerate(opml):
        if not isinstance(name, str):
            continue
        p = Path(name) if Path(name).is_absolute() else base_dir / name
        data["feeds_from"][i] = str(p)
        try:
            for feed in _read_opml(p):
                if feed["url"] not in known:
                    known.add(feed["url"])
                    feeds.append(feed)
        except ValueError as exc:
            errors.append((("feeds_from", i), str(exc)))
    data["feeds"] = feeds


def mask_values(text: str, values: Iterable[str]) -> str:
    """``text`` with each of ``values`` (and its repr) replaced by ``***``."""
    for value in sorted((v for v in values if v and len(v) >= 3), key=len, reverse=True):
        if value in text:
            text = text.replace(repr(value), "'***'").replace(value, "***")
    return text


def format_errors(
    errors: list[tuple[_Loc, str]], lines: yamlload.Document | None, masked: Iterable[str] = ()
) -> list[str]:
    """Errors as ``line N: path: message``, in file order, secrets masked."""
    masked = list(masked)
    rows: list[tuple[int, int, str]] = []
    for n, (loc, msg) in enumerate(errors):
        line = lines.line(loc) if lines is not None else None
        where = yamlload.format_path(loc) if loc else ""
        text = f"{where}: {msg}" if where else msg
        if line:
            text = f"line {line}: {text}"
        rows.append((line or 0, n, mask_values(text, masked)))
    rows.sort()
    return list(dict.fromkeys(r[2] for r in rows))


def load_config_text(
    text: str,
    *,
    base_dir: Path,
    source: str = "<config>",
    env: dict[str, str] | None = None,
    path: Path | None = None,
) -> Config:
    """Validate a config's text; raise ConfigError listing every problem (path and line each).

    Every value taken from ``${VAR}`` is remembered on the config (``Config.env_values``) and
    masked in every message, since it may be a secret placed in the wrong key.
    """
    env = dict(os.environ if env is None else env)
    try:
        doc = yamlload.load(text)
    except yamlload.YamlError as exc:
        raise ConfigError(exc.errors, source) from None
    data = doc.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            ["the config must be a mapping of keys (storage, feeds, channels, ...)"], source
        )
    errors: list[tuple[_Loc, str]] = []
    used: set[str] = set()
    data = _interpolate(data, (), env, errors, used)
    unset = [loc for loc, _ in errors]  # a key whose variable is unset has said all it needs
    # `sources:` is the newer name of `feeds:` (a source may be a sitemap or a page too).
    section = "feeds"
    if "sources" in data:
        if "feeds" in data:
            errors.append((("sources",), "use either feeds: or sources:, not both"))
        else:
            data["feeds"] = data.pop("sources")
            section = "sources"
    _relative_paths(data, base_dir, env)
    _opml_feeds(data, base_dir, errors)
    errors.extend(_cross_reference_errors(data))
    cfg: Config | None = None
    try:
        cfg = Config.model_validate({**data, "path": path})
    except ValidationError as exc:
        errors.extend(
            (loc, msg)
            for loc, msg in _pydantic_errors(exc)
            if not any(loc[: len(u)] == u for u in unset)
        )
    if errors or cfg is None:
        from monitor.validate import raw_watchlist_errors

        errors.extend(raw_watchlist_errors(data))
        if section == "sources":
            errors = [
                (("sources", *loc[1:]) if loc[:1] == ("feeds",) else loc, m) for loc, m in errors
            ]
        raise ConfigError(format_errors(errors, doc, used), source)
    cfg._env_values = frozenset(used)
    cfg._doc = doc
    return cfg


def iter_secrets(cfg: Config) -> Iterator[str]:
    """Every secret value in the config, so log filters can redact them: declared secrets,
    passwords and user names in URLs, and every value taken from ``${VAR}``."""
    from monitor.deliver.channel import secret_values

    for ch in cfg.channels.values():
        yield from secret_values(ch)
    if cfg.server is not None and cfg.server.token is not None:
        yield cfg.server.token.get_secret_value()
    for url in [*(f.url for f in cfg.feeds), cfg.storage.url]:
        if "@" in url and "://" in url:
            yield from userinfo_secrets(url)
    yield from cfg.env_values


def userinfo_secrets(url: str) -> list[str]:
    """The user name and password of ``scheme://user:password@host/...``, if any."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    return [unquote(v) for v in (parts.password, parts.username) if v]
