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
    netloc = host
    if parts.username is not None:  # keep credentials: they change what is fetched
        userinfo = parts.username
        if parts.password is not None:
            userinfo += ":" + parts.password
        netloc = f"{userinfo}@{netloc}"
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
