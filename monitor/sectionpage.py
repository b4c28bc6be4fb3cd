"""Section page HTML -> the article links on it, as :class:`Entry` items. Pure; runs in the pool.

A news site's section page (the home page, /world/, /politics/) lists its latest stories among a
lot of links that are not stories: navigation, "most read" boxes, pagination, tag and author
pages, login and share links. :func:`find_article_links` keeps the stories, in page order, once
each, titled from their headline. The heuristic is written down in docs/fetching.md ("Sources");
in short:

1. Chrome is skipped: links inside ``nav``, ``aside``, ``form``, ``menu``, a page-level ``header``
   or ``footer`` (one not inside ``article``/``main``/``section``), ARIA navigation, banner,
   contentinfo, complementary, menu and search roles, elements whose class or id names navigation,
   menus, breadcrumbs, sidebars, widgets, pagination, share/social buttons, newsletters or ads, and
   boxes headed "Most read", "Popular", "Trending" and the like.
2. Links that are not stories are skipped: other sites, the page itself, pagination (``rel=next``,
   "Next", "2", ``/page/2``, ``?page=2``), tag, topic, category, section, author, search, login,
   subscribe, share, about, contact and legal pages, and files (images, PDFs, feeds).
3. What remains counts as an article when its URL looks like one (a date in the path, a numeric
   id of five or more digits, a slug of several words, an ``.html`` page name), or when the link
   is a headline (inside ``h1``-``h6`` or an ``article``) of five words or more.
4. Several links to one article (image, headline, "Read more", "3 comments") make one item
   titled by the best of them: a headline's text first, then the longest non-generic text, then a
   ``title``/``aria-label`` attribute or an image's ``alt``.

A CSS ``selector`` (elements that are links or contain them) replaces steps 1-3, and a
``pattern`` (a regular expression the absolute URL must match) replaces step 3's URL test; given
both, the selector picks the links and the pattern narrows them.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from urllib.parse import urljoin, urlsplit

from lxml import etree
from lxml import html as lxml_html
from lxml.cssselect import CSSSelector, SelectorError

from monitor.models import Entry
from monitor.urls import canonical_url

# -- step 1: chrome
_CHROME_TAGS = frozenset({"nav", "aside", "form", "menu", "dialog", "select"})
_LANDMARK_TAGS = frozenset({"header", "footer"})  # chrome only at page level
_SECTIONING = frozenset({"article", "main", "section", "aside", "nav"})
_CHROME_ROLES = frozenset(
    {"navigation", "banner", "contentinfo", "complementary", "menu", "menubar", "search", "tablist"}
)
_CHROME_TOKENS = frozenset(
    """nav navbar navigation main-nav site-nav global-nav primary-nav menu main-menu nav-menu
    submenu sub-menu megamenu mega-menu breadcrumb breadcrumbs sidebar side-bar widget widgets
    pagination pager paging share sharing share-buttons share-bar social social-links
    social-share newsletter ticker skip-link skiplink cookie cookies cookie-banner ad ads advert
    adverts advertisement sponsored sponsor masthead site-header site-footer global-header
    global-footer login account subscribe subscription paywall""".split()
)
_LANDMARK_TOKENS = frozenset({"header", "footer", "page-header", "page-footer"})
_CHROME_SUBSTRINGS = (
    "most-read",
    "mostread",
    "most-popular",
    "mostpopular",
    "most-viewed",
    "mostviewed",
    "most-shared",
    "most-commented",
    "popular",
    "trending",
    "pagination",
    "breadcrumb",
    "navbar",
    "sidebar",
    "newsletter",
)
_BOX_HEADING_RE = re.compile(
    r"^(?:the\s+)?(?:most\s+(?:read|popular|viewed|shared|commented|emailed|watched|clicked)"
    r"|popular(?:\s+(?:now|today|this\s+week|stories|articles|posts))?"
    r"|trending(?:\s+(?:now|today|stories|articles|topics))?|what'?s\s+trending"
    r"|editor'?s?'?\s+picks?|recommended(?:\s+for\s+you)?|you\s+(?:may|might)\s+(?:also\s+)?like"
    r"|sponsored(?:\s+(?:content|stories|links))?|partner\s+content|from\s+(?:our|the)\s+partners"
    r"|around\s+the\s+web|advertisement)\s*[:.!]?$",
    re.IGNORECASE,
)
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

# -- step 2: links that are not stories
_PAGINATION_TEXT_RE = re.compile(
    r"^(?:next|previous|prev|older|newer|first|last|more|load\s+more|show\s+more|see\s+more"
    r"|more\s+(?:stories|articles|news)|older\s+(?:posts|stories|entries)"
    r"|newer\s+(?:posts|stories|entries)|page\s*\d+|\d{1,4}|[«»‹›<>←→…]+"
    r"|(?:next|previous|prev|older|newer)\s*(?:page)?\s*[«»‹›<>←→]*"
    r"|[«»‹›<>←→]*\s*(?:next|previous|prev|older|newer)\s*(?:page)?)$",
    re.IGNORECASE,
)
_PAGINATION_RELS = frozenset({"next", "prev", "previous", "first", "last"})
_PAGINATION_PATH_RE = re.compile(r"/(?:page|seite|pagina|strona)/?\d+/?$", re.IGNORECASE)
_PAGINATION_QUERY_RE = re.compile(r"(?:^|&)(?:page|paged|pg|pagenum|start|offset)=\d+", re.I)
_SKIP_SEGMENTS = frozenset(
    """tag tags topic topics category categories section sections author authors profile
    profiles people user users search login logout signin sign-in signup sign-up register
    subscribe subscriptions subscription account my-account newsletter newsletters share about
    about-us contact contact-us privacy privacy-policy terms terms-of-use terms-of-service
    cookies cookie-policy legal imprint impressum help faq jobs careers advertise advertising
    rss feed feeds atom sitemap cart shop donate weather horoscopes crosswords games puzzles
    wp-login.php wp-admin""".split()
)
_FILE_EXTENSIONS = (
    ".jpg .jpeg .png .gif .webp .svg .avif .ico .pdf .zip .gz .mp3 .mp4 .m4a .mov .webm .xml"
    " .rss .atom .json .css .js .ics .txt .doc .docx .xls .xlsx .ppt .pptx"
).split()

# -- step 3: what an article URL looks like
_DATE_IN_PATH_RE = re.compile(
    r"/(?:19|20)\d{2}/(?:0?[1-9]|1[0-2])/"  # /2024/05/
    r"|(?:^|[/_-])(?:19|20)\d{2}-?(?:0[1-9]|1[0-2])-?(?:0[1-9]|[12]\d|3[01])(?:$|[/_.-])"
)
_LONG_NUMBER_RE = re.compile(r"(?<![0-9])\d{5,}(?![0-9])")
_ID_QUERY_RE = re.compile(
    r"(?:^|&)(?:id|p|story|storyid|story_id|article|articleid|article_id|newsid|news_id|aid|cid)"
    r"=\d+",
    re.IGNORECASE,
)
_PAGE_EXT_RE = re.compile(r"\.(?:s?html?|php|aspx?|cms|ece|jsp)$", re.IGNORECASE)
_WORD_SPLIT_RE = re.compile(r"[-_+.,~]+|%20")
_HEADLINE_WORDS = 5  # a headline link needs this many words when its URL says nothing

# -- step 4: titles
_GENERIC_TEXT_RE = re.compile(
    r"^(?:read\s+more|read\s+on|more|continue(?:\s+reading)?|full\s+(?:story|article)"
    r"|read\s+(?:the\s+)?(?:full\s+)?(?:story|article)|keep\s+reading|view|open|go|here"
    r"|click\s+here|\d+\s+comments?|comments?|watch(?:\s+now)?|listen(?:\s+now)?|video|play"
    r"|photos?|gallery|live|updated?|new|image|[»›→]+)\W*$",
    re.IGNORECASE,
)
_SKIP_TEXT_TAGS = frozenset({"script", "style", "noscript", "template", "svg", "time"})
# Inside a headline link, text in these is a label, not the title: "LIVE", a kicker, a
# screen-reader prefix ("Posted in").
_LABEL_SUBSTRINGS = (
    "kicker",
    "eyebrow",
    "label",
    "badge",
    "flag",
    "sr-only",
    "visually-hidden",
    "visuallyhidden",
    "screen-reader",
)

_CHARSET_META_RE = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.IGNORECASE
)


def check_selector(selector: str) -> None:
    """Raise ValueError with a readable message when ``selector`` is not valid CSS."""
    _compile_selector(selector)


def check_pattern(pattern: str) -> None:
    """Raise ValueError with a readable message when ``pattern`` is not a valid regex."""
    _compile_pattern(pattern)


def find_article_links(
    html: bytes,
    url: str,
    *,
    selector: str | None = None,
    pattern: str | None = None,
    charset: str | None = None,
    same_site: bool = True,
) -> list[Entry]:
    """The article links of a section page, in page order, one Entry per article.

    ``url`` is the page's URL (links are resolved against it, or its ``<base>``); ``charset``
    is the HTTP header's label, if any. ``same_site`` drops links to other sites (subdomains of
    the page's site count as the same site). Raises ValueError for an invalid selector or pattern.
    """
    css = _compile_selector(selector) if selector else None
    regex = _compile_pattern(pattern) if pattern else None
    root = _parse_html(html, charset)
    if root is None:
        return []
    base = url
    for b in root.iter("base"):
        href = b.get("href")
        if href and href.strip():
            base = urljoin(url, href.strip())
        break
    page = canonical_url(url)
    page_host = _site(urlsplit(page).hostname if page else None)

    if css is not None:
        links = _selected_links(root, css)
        excluded: set[etree._Element] = set()
    else:
        links = list(root.iter("a"))
        excluded = _chrome_links(root)

    titles: dict[str, tuple[int, str]] = {}
    order: list[str] = []
    # Links are tested on their absolute URL first and canonicalised only when kept:
    # canonical_url is the costliest step, and most links on a section page are dropped.
    resolved: dict[str, tuple[str, str, str, str] | None] = {}  # href -> (abs, host, path, query)
    canonical: dict[str, str | None] = {}
    for a in links:
        if a in excluded:
            continue
        href = a.get("href")
        if not href or href.lstrip().startswith(("#", "mailto:", "javascript:", "tel:")):
            continue
        if href in resolved:
            target = resolved[href]
        else:
            target = resolved[href] = _resolve(href, base)
        if target is None:
            continue
        absolute, host, path, query = target
        if same_site and not _same_site(host, page_host):
            continue
        if css is None:
            if _is_pagination(a, path, query):
                continue
            if regex is None and not _is_article(a, path, query):
                continue
        if absolute in canonical:
            link = canonical[absolute]
        else:
            link = canonical[absolute] = canonical_url(absolute)
        if link is None or link == page:
            continue
        if regex is not None and not regex.search(link):
            continue
        title, score = _title(a)
        known = titles.get(link)
        if known is None:
            order.append(link)
            titles[link] = (score, title)
        elif score > known[0]:
            titles[link] = (score, title)
    return [Entry(guid=link, url=link, title=titles[link][1]) for link in order]


def _resolve(href: str, base: str) -> tuple[str, str, str, str] | None:
    """(absolute URL, host, path, query) of a link, or None when it is not an http(s) URL."""
    try:
        absolute = urljoin(base, "".join(href.split()))
        parts = urlsplit(absolute)
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    return absolute.split("#", 1)[0], host, parts.path, parts.query


def link_digest(entries: list[Entry]) -> str:
    """A fingerprint of a page's article links (URLs in page order), titles left out.

    A section page's bytes change on every request (ads, "updated 2 min ago", tokens), so the
    body hash that spares unchanged feeds never matches; this one changes only when the set or
    order of articles does, so a poll can stop before looking anything up."""
    h = hashlib.sha256()
    for e in entries:
        h.update((e.url or "").encode("utf-8", "surrogatepass"))
        h.update(b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- parsing


def _parse_html(body: bytes, charset: str | None) -> etree._Element | None:
    if not body or not body.strip():
        return None
    parser = lxml_html.HTMLParser(
        encoding=_choose_charset(body, charset),
        remove_comments=True,
        remove_pis=True,
        no_network=True,
    )
    try:
        root = lxml_html.document_fromstring(body, parser=parser)
    except (etree.ParserError, etree.XMLSyntaxError, ValueError):
        return None
    return root


def _choose_charset(body: bytes, header: str | None) -> str:
    """BOM, then the HTTP header, then <meta charset>, then UTF-8 if it decodes, else cp1252."""
    if body.startswith(codecs.BOM_UTF8):
        return "utf-8"
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    for label in (header, _meta_charset(body)):
        codec = _codec(label)
        if codec:
            return codec
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _meta_charset(body: bytes) -> str | None:
    m = _CHARSET_META_RE.search(body[:4096])
    return m.group(1).decode("ascii") if m else None


def _codec(label: str | None) -> str | None:
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except LookupError:
        return None
    # an ASCII-readable declaration cannot be UTF-16/32; iso-8859-1 is read as its superset
    if name.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return "cp1252" if name in ("latin-1", "iso8859-1", "ascii") else name


def _compile_selector(selector: str) -> CSSSelector:
    try:
        return CSSSelector(selector, translator="html")
    except (SelectorError, etree.XPathError, ValueError) as exc:
        raise ValueError(f"invalid CSS selector {selector!r}: {exc}") from None


def _compile_pattern(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid URL pattern {pattern!r}: {exc}") from None


def _selected_links(root: etree._Element, css: CSSSelector) -> list[etree._Element]:
    out: list[etree._Element] = []
    seen: set[etree._Element] = set()
    for el in css(root):
        for a in [el] if el.tag == "a" else el.iter("a"):
            if a not in seen:
                seen.add(a)
                out.append(a)
    return out


# --------------------------------------------------------------------------- step 1: chrome


def _chrome_links(root: etree._Element) -> set[etree._Element]:
    """Every <a> inside page chrome or a "most read"-style box."""
    boxes: list[etree._Element] = []
    for el in root.iter(etree.Element):
        tag = el.tag
        if tag in _HEADINGS:
            boxes.extend(_headed_box(el))
        elif _is_chrome(el, tag):
            boxes.append(el)
    out: set[etree._Element] = set()
    for box in boxes:
        if box.tag == "a":
            out.add(box)
        out.update(box.iter("a"))
    return out


def _is_chrome(el: etree._Element, tag: str) -> bool:
    if tag in _CHROME_TAGS:
        return True
    if tag in _LANDMARK_TAGS and _page_level(el):
        return True
    role = el.get("role")
    if role and role.strip().lower() in _CHROME_ROLES:
        return True
    names = f"{el.get('class') or ''} {el.get('id') or ''}"
    if not names.strip():
        return False
    for token in names.lower().replace("_", "-").split():
        if token in _CHROME_TOKENS:
            return True
        if token in _LANDMARK_TOKENS and _page_level(el):
            return True
        if any(s in token for s in _CHROME_SUBSTRINGS):
            return True
    return False


def _page_level(el: etree._Element) -> bool:
    """A header/footer is the page's (a landmark) unless it sits inside a sectioning element."""
    return not any(p.tag in _SECTIONING for p in el.iterancestors())


def _headed_box(heading: etree._Element) -> list[etree._Element]:
    """The box a "Most read"-style heading introduces: its parent when the heading is the
    parent's only heading, else the heading's following siblings up to the next heading."""
    text = _text(heading)
    if not text or len(text) > 60 or not _BOX_HEADING_RE.match(text):
        return []
    parent = heading.getparent()
    if parent is None:
        return []
    if sum(1 for c in parent if c.tag in _HEADINGS) == 1 and parent.tag not in ("body", "main"):
        return [parent]
    out = []
    for sib in heading.itersiblings():
        if sib.tag in _HEADINGS:
            break
        out.append(sib)
    return out


# --------------------------------------------------------------------------- steps 2-3


def _site(host: str | None) -> str:
    host = (host or "").lower()
    return host[4:] if host.startswith("www.") else host


def _same_site(link_host: str | None, page_host: str) -> bool:
    """The page's host, or a subdomain of it, or the other way round (news.x.org, www.x.org)."""
    host = _site(link_host)
    return host == page_host or (
        bool(host and page_host)
        and (host.endswith("." + page_host) or page_host.endswith("." + host))
    )


def _is_pagination(a: etree._Element, path: str, query: str) -> bool:
    rels = (a.get("rel") or "").lower().split()
    if any(r in _PAGINATION_RELS for r in rels):
        return True
    if _PAGINATION_PATH_RE.search(path) or _PAGINATION_QUERY_RE.search(query):
        return True
    text = _text(a)
    return bool(text) and len(text) <= 30 and bool(_PAGINATION_TEXT_RE.match(text))


def _is_article(a: etree._Element, path: str, query: str) -> bool:
    segments = [s for s in path.split("/") if s]
    lowered = [s.lower() for s in segments]
    if any(s in _SKIP_SEGMENTS for s in lowered):
        return False
    if lowered and lowered[-1].endswith(tuple(_FILE_EXTENSIONS)):
        return False
    if _url_looks_like_article(segments, path, query):
        return True
    if not segments:
        return False
    # a headline link whose URL says nothing (/news/story, /p/ab3f): judged by its text
    in_headline = a.get("role") == "heading" or any(
        p.tag in _HEADINGS or p.tag == "article" for p in a.iterancestors()
    )
    if not in_headline and not any(c.tag in _HEADINGS for c in a.iter()):
        return False
    return len(_text(a).split()) >= _HEADLINE_WORDS


def _url_looks_like_article(segments: list[str], path: str, query: str) -> bool:
    if _ID_QUERY_RE.search(query):
        return True
    if not segments:
        return False
    last = segments[-1]
    stem = _PAGE_EXT_RE.sub("", last)
    if _DATE_IN_PATH_RE.search(path) and not (stem.isdigit() and len(stem) <= 4):
        return True  # a dated path, unless it ends at the date itself (an archive page)
    if _LONG_NUMBER_RE.search(last) or (len(segments) > 1 and _LONG_NUMBER_RE.search(path)):
        return True
    words = [w for w in _WORD_SPLIT_RE.split(stem) if any(c.isalpha() for c in w)]
    if len(words) >= 4 or (len(words) >= 3 and len(segments) >= 2):
        return True
    return bool(_PAGE_EXT_RE.search(last)) and (len(words) >= 2 or any(c.isdigit() for c in stem))


# --------------------------------------------------------------------------- step 4: titles


def _text(el: etree._Element, *, labels: bool = True) -> str:
    """Visible text of an element, whitespace collapsed (scripts and styles left out).

    ``labels=False`` also leaves out kickers, badges and screen-reader prefixes, unless
    nothing else is left."""
    parts: list[str] = []
    _collect_text(el, parts, labels)
    text = " ".join(" ".join(parts).split())
    return text if text or labels else _text(el)


def _collect_text(el: etree._Element, parts: list[str], labels: bool) -> None:
    if el.text:
        parts.append(el.text)
    for child in el:
        if isinstance(child.tag, str) and child.tag not in _SKIP_TEXT_TAGS:
            if labels or not _is_label(child):
                _collect_text(child, parts, labels)
        if child.tail:
            parts.append(child.tail)


def _is_label(el: etree._Element) -> bool:
    names = el.get("class")
    if not names:
        return False
    low = names.lower().replace("_", "-")
    return any(s in low for s in _LABEL_SUBSTRINGS)


def _title(a: etree._Element) -> tuple[str, int]:
    """(title, score): a headline's text beats other text, which beats attributes and alt text."""
    text = _text(a, labels=False)
    if text and not _GENERIC_TEXT_RE.match(text):
        score = 1000 + min(len(text), 300)
        if any(c.tag in _HEADINGS for c in a.iter()) or any(
            p.tag in _HEADINGS for p in a.iterancestors()
        ):
            score += 1000
        return text, score
    for attr in ("title", "aria-label"):
        value = " ".join((a.get(attr) or "").split())
        if value and not _GENERIC_TEXT_RE.match(value):
            return value, 500 + min(len(value), 300)
    for img in a.iter("img"):
        alt = " ".join((img.get("alt") or "").split())
        if alt and not _GENERIC_TEXT_RE.match(alt):
            return alt, 200 + min(len(alt), 300)
    return "", 0  # only "Read more"-style text: better no title than that one
