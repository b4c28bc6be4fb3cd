"""The dashboard's defences: sessions, CSRF tokens, Host and Origin checks, response headers.

- A per-process secret signs everything: restarting the server logs browsers out and voids
  every form, which is the safe direction.
- Beyond the token (``server.token``, required off loopback), a browser logs in once with the
  token and gets a signed session cookie (HttpOnly, SameSite=Strict, 12 hours); scripts keep
  sending ``Authorization: Bearer``.
- Every POST carries a CSRF token bound to the session, and its Origin (when sent) must be
  this server. Without a token the server is on loopback; there the Host header must name a
  loopback address, so a web page cannot reach the dashboard through DNS rebinding.
- Pages are served with a Content-Security-Policy that allows no inline script or style.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import deque
from urllib.parse import urlsplit

from aiohttp import web

SESSION_COOKIE = "feedwatch_session"
SESSION_SECONDS = 12 * 3600
LOGIN_ATTEMPTS = 10  # failed logins per client and minute before it must wait
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    # same-origin: no page address (a search query) leaves for another site, and forms still
    # carry a real Origin (with no-referrer browsers send "Origin: null").
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def is_loopback_host(host: str) -> bool:
    """``127.0.0.1``, ``[::1]``, ``localhost``, with or without a port."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Guard:
    """Signs and checks sessions and CSRF tokens with one per-process secret."""

    def __init__(self, token: str | None, *, loopback_only: bool) -> None:
        self._secret = secrets.token_bytes(32)
        self._token = token.encode() if token else None
        self.loopback_only = loopback_only  # no token: Host must be a loopback name
        self._failures: dict[str, deque[float]] = {}

    @property
    def needs_login(self) -> bool:
        return self._token is not None

    def _sign(self, text: str) -> str:
        return hmac.new(self._secret, text.encode(), hashlib.sha256).hexdigest()

    # -- sessions
    def check_token(self, given: str) -> bool:
        return self._token is not None and hmac.compare_digest(given.encode(), self._token)

    def new_session(self) -> str:
        body = f"{int(time.time()) + SESSION_SECONDS}.{secrets.token_hex(16)}"
        return f"{body}.{self._sign('session:' + body)}"

    def session(self, request: web.Request) -> str | None:
        """The request's valid session cookie, or None."""
        value = request.cookies.get(SESSION_COOKIE, "")
        body, _, sig = value.rpartition(".")
        if not body or not hmac.compare_digest(sig, self._sign("session:" + body)):
            return None
        expires, _, _ = body.partition(".")
        if not expires.isdigit() or int(expires) < time.time():
            return None
        return value

    def authorized(self, request: web.Request) -> bool:
        return self.session(request) is not None

    def login_allowed(self, client: str) -> bool:
        now = time.monotonic()
        recent = self._failures.setdefault(client, deque())
        while recent and recent[0] < now - 60:
            recent.popleft()
        return len(recent) < LOGIN_ATTEMPTS

    def login_failed(self, client: str) -> None:
        self._failures.setdefault(client, deque()).append(time.monotonic())
        if len(self._failures) > 10_000:  # bounded: forget the oldest clients
            for key in list(self._failures)[:5000]:
                del self._failures[key]

    # -- CSRF
    def csrf_token(self, request: web.Request) -> str:
        return self._sign("csrf:" + (self.session(request) or "-"))

    def check_post(self, request: web.Request, form_token: str) -> str | None:
        """Why this POST is refused, or None: a missing or wrong CSRF token, a foreign Origin."""
        origin = request.headers.get("Origin")
        # "null" (a privacy setting, a sandboxed frame) proves nothing either way: the token does.
        if origin and origin != "null" and urlsplit(origin).netloc.lower() != request.host.lower():
            return "this form was sent from another site"
        if not hmac.compare_digest(form_token.encode(), self.csrf_token(request).encode()):
            return "the form has expired (the server restarted?): reload the page and try again"
        return None

    def check_host(self, request: web.Request) -> bool:
        """Without a token the server answers loopback names only (no DNS rebinding)."""
        return not self.loopback_only or is_loopback_host(request.host)


def secure_headers(response: web.StreamResponse) -> web.StreamResponse:
    for key, value in HEADERS.items():
        response.headers[key] = value
    return response
