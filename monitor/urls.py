"""Canonical URLs: one spelling per article, so the same story found twice alerts once.

The contract defines "the same article" partly by canonical URL: scheme and host lower-cased,
default port dropped, fragment dropped and tracking parameters removed. Everything else (path
case, remaining query parameters and their order) is kept, because servers may treat it as
meaningful.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote_plus, urljoin, urlsplit, urlunsplit

# Query parameters that only track where a click came from; they never select content.
# Exact names (compared case-insensitively):
TRACKING_PARAMS: frozenset[str] = frozenset(
    {
        "fbclid",  # Facebook
        "gclid",  # Google Ads
        "gclsrc",
        "dclid",  # Google Display
        "gbraid",
        "wbraid",
        "msclkid",  # Microsoft Ads
        "mc_cid",  # Mailchimp
        "mc_eid",
        "yclid",  # Yandex
        "igshid",  # Instagram
        "_hsenc",  # HubSpot
        "_hsmi",
        "ref_src",  # Twitter
        "ref_url",
        "twclid",
        "ttclid",  # TikTok
        "li_fat_id",  # LinkedIn
        "mkt_tok",  # Marketo
        "oly_anon_id",  # Omeda
        "oly_enc_id",
        "vero_id",  # Vero
        "vero_conv",
        "wickedid",
        "s_cid",  # Adobe
        "ncid",
        "cmpid",
        "spm",  # Alibaba
        "__s",  # Drip
        "ocid",  # Microsoft/MSN
        "_ga",  # Google Analytics linker
        "_gl",
    }
)
# Prefixes (compared case-insensitively): utm_source, utm_medium, ... and Piwik/Matomo.
TRACKING_PREFIXES: tuple[str, ...] = ("utm_", "pk_", "mtm_", "hsa_")

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are when re-quoting a path or query (RFC 3986 reserved + '%').
_PATH_SAFE = "/:@!$&'()*+,;=-._~%"
_QUERY_SAFE = "/?:@!$&'()*+,;=-._~%"
_SPACE_RE = re.compile(r"[\t\n\r]")


def is_tracking_param(name: str) -> bool:
    """True for a query parameter that only tracks clicks (see TRACKING_PARAMS)."""
    low = name.lower()
    return low in TRACKING_PARAMS or low.startswith(TRACKING_PREFIXES)


def canonical_url(url: str, base: str | None = None) -> str | None:
    """The canonical form of ``url`` (resolved against ``base``), or None if not usable http(s)."""
    if not isinstance(url, str):
        return None
    url = _SPACE_RE.sub("", url.strip())
    if not url:
        return None
    try:
        if base:
            url = urljoin(base.strip(), url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in _DEFAULT_PORTS:
            return None
        host = parts.hostname  # already lower-cased, brackets removed
        port = parts.port  # raises ValueError when not a number / out of range
    except ValueError:
        return None
    if not host or any(c in host for c in ' <>"{}|\\^`'):
        return None
    host = host.rstrip(".") or host
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    else:
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            return None  # not a valid international host name
    netloc = host  # credentials are dropped: the same article whoever fetched it, never stored
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc += f":{port}"
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = _clean_query(parts.query)
    return urlunsplit((scheme, netloc, path, query, ""))


def _clean_query(query: str) -> str:
    """The query without tracking parameters, other parameters kept as written and in order."""
    if not query:
        return ""
    kept = []
    for pair in query.split("&"):
        if not pair:
            continue
        name = pair.split("=", 1)[0]
        if is_tracking_param(unquote_plus(name)):
            continue
        kept.append(quote(pair, safe=_QUERY_SAFE))
    return "&".join(kept)


def strip_userinfo(url: str) -> str:
    """``url`` without a ``user:password@`` part: what may be stored, logged and sent.

    Credentials in a feed's URL are for that feed's own requests; relative links resolved
    against it would otherwise carry them into article URLs, alerts and the database.
    """
    if "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def with_credentials(url: str, configured: str) -> str:
    """``url`` with the user:password of ``configured`` when both name the same host and port.

    A feed that moved to another host (permanent redirect) is asked without them, as browsers
    and curl do.
    """
    if "@" not in configured:
        return url
    try:
        conf, cur = urlsplit(configured), urlsplit(url)
    except ValueError:
        return url
    if conf.username is None or (conf.hostname, conf.port) != (cur.hostname, cur.port):
        return url
    userinfo = conf.netloc.rpartition("@")[0]
    return urlunsplit(cur._replace(netloc=f"{userinfo}@{cur.netloc.rpartition('@')[2]}"))


def feed_key(url: str) -> str:
    """A feed's identity in storage: its configured URL without credentials."""
    return strip_userinfo(url.strip())
