"""The dashboard's gate: every screen needs a signed-in session, every POST the session's CSRF
token and a same-origin request, and every answer strict security headers.

Browsers do not sign requests, so the API's guard lets ``/_/ui`` through (``api.guard``) and
this middleware does the checking instead: the session cookie (``session``) names an admin
key that must still be active, checked on every request. Only the login form and the static
files are open.

The Content-Security-Policy allows this origin's scripts and styles only, so no inline script
or style runs even if something slipped past autoescaping; htmx is configured (``base.html``)
not to add inline styles or evaluate code.
"""

from __future__ import annotations

import logging
import urllib.parse

from aiohttp import web
from aiohttp.typedefs import Handler

from diststorage.core.errors import DiststorageError
from diststorage.gateway.dashboard.context import SESSION, dashboard_of, ui_url
from diststorage.gateway.dashboard.session import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE
from diststorage.gateway.http.status import status_of

log = logging.getLogger(__name__)

LOGIN_PATH = ui_url("/login")
STATIC_PATH = ui_url("/static")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_SAFE_METHODS = frozenset({"GET", "HEAD"})


def _is_open(path: str) -> bool:
    return path == LOGIN_PATH or path.startswith(STATIC_PATH + "/")


def safe_next(target: str | None) -> str:
    """Where to go after the login: a dashboard path only (never another site's URL)."""
    if target and target.startswith(ui_url()) and "//" not in target and "\\" not in target:
        return target
    return ui_url()


def same_origin(request: web.Request) -> bool:
    """Whether a state-changing request comes from a page of this site. Browsers send Origin
    (and Sec-Fetch-Site) on every POST; a request with neither is not a browser's, and needs
    the CSRF token like any other."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("Origin")
    if origin is None:
        return True
    # The host only: behind a TLS-terminating proxy the scheme seen here is http.
    return urllib.parse.urlsplit(origin).netloc == request.host


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An ``on_response_prepare`` hook, so that streamed answers (SSE) get them too."""
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cache-Control", "no-store")


def _refuse(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def _to_login(request: web.Request) -> web.StreamResponse:
    target = LOGIN_PATH + "?" + urllib.parse.urlencode({"next": request.path_qs})
    if request.headers.get("HX-Request"):
        # htmx follows this header with a full page load, instead of swapping a login form
        # into a panel.
        response = _refuse(401, "sign in again")
        response.headers["HX-Redirect"] = target
        return response
    if request.method in _SAFE_METHODS:
        raise web.HTTPSeeOther(target)
    return _refuse(401, "your session has ended: sign in again")


@web.middleware
async def require_session(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method not in _SAFE_METHODS and not same_origin(request):
        return _refuse(403, "cross-site requests are refused")
    if _is_open(request.path):
        return await handler(request)
    dashboard = dashboard_of(request)
    session = await dashboard.sessions.check(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return _to_login(request)
    request[SESSION] = session
    if request.method not in _SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER)
        if token is None:
            form = await request.post()
            field = form.get(CSRF_FIELD)
            token = field if isinstance(field, str) else None
        if not dashboard.sessions.csrf_ok(session, token):
            return _refuse(403, "the form is stale or forged (no valid CSRF token): reload")
    return await handler(request)


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as short text answers in the dashboard's own terms (the API's are JSON)."""
    try:
        return await handler(request)
    except DiststorageError as error:
        status = status_of(error)
        if status >= 500:
            log.warning("%s %s → %s: %s", request.method, request.path, error.code, error)
        return _refuse(status, f"{error.code}: {error.message}")
