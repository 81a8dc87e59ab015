"""Signing in and out of the dashboard: an access key id and its secret, once, for a session
cookie (``session``)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from diststorage.gateway.dashboard.context import (
    Screen,
    dashboard_of,
    render_page,
    ui_url,
)
from diststorage.gateway.dashboard.security import safe_next
from diststorage.gateway.dashboard.session import SESSION_COOKIE

MAX_FIELD_CHARS = 256


def _form_text(form: Mapping[str, object], name: str) -> str:
    value = form.get(name)
    return value[:MAX_FIELD_CHARS] if isinstance(value, str) else ""


async def login_page(request: web.Request) -> web.Response:
    context = {"next": safe_next(request.query.get("next")), "failed": False, "key_id": ""}
    return await render_page(request, "login.html", context, screen="login")


async def login(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    key_id = _form_text(form, "access_key_id").strip()
    secret = _form_text(form, "secret_access_key")
    target = safe_next(_form_text(form, "next"))
    sessions = dashboard_of(request).sessions
    cookie = await sessions.login(key_id, secret)
    if cookie is None:
        context = {"next": target, "failed": True, "key_id": key_id}
        return await render_page(request, "login.html", context, screen="login", status=401)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=sessions.ttl_s,
        path=ui_url(),
        httponly=True,
        samesite="Strict",
        secure=request.secure,
    )
    return response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther(ui_url("/login"))
    response.del_cookie(SESSION_COOKIE, path=ui_url())
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)


# Not in the navigation bar (no label): it is where a request without a session lands.
SCREEN = Screen("login", "", "/login", add_routes)
