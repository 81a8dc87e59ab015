"""Signing in to the dashboard, its session cookie, CSRF tokens and security headers, on a
real cluster."""

from __future__ import annotations

import aiohttp
from conftest import TEST_ROOT
from dashboard_support import UI, browser_session, csrf_token_of, signed_in

from diststorage.local import LocalCluster


async def test_a_page_without_a_session_sends_the_browser_to_the_login(
    cluster: LocalCluster,
) -> None:
    async with browser_session(cluster.url) as session:
        async with session.get(UI + "/", allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"].startswith(UI + "/login?next=")
        async with session.get(UI + "/login") as response:
            assert response.status == 200
            page = await response.text()
            assert 'name="access_key_id"' in page
            assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")


async def test_a_wrong_secret_is_refused_and_sets_no_cookie(cluster: LocalCluster) -> None:
    form = {"access_key_id": TEST_ROOT.access_key_id, "secret_access_key": "not-the-secret"}
    async with (
        browser_session(cluster.url) as session,
        session.post(UI + "/login", data=form, allow_redirects=False) as response,
    ):
        assert response.status == 401
        assert "do not open the dashboard" in await response.text()
        assert "Set-Cookie" not in response.headers


async def test_the_session_cookie_is_http_only_and_strict(cluster: LocalCluster) -> None:
    form = {
        "access_key_id": TEST_ROOT.access_key_id,
        "secret_access_key": TEST_ROOT.secret_access_key,
    }
    async with (
        browser_session(cluster.url) as session,
        session.post(UI + "/login", data=form, allow_redirects=False) as response,
    ):
        assert response.status == 303
        cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert f"Path={UI}" in cookie


async def test_a_post_needs_the_csrf_token(cluster: LocalCluster) -> None:
    async with signed_in(cluster.url, TEST_ROOT) as session:
        async with session.get(UI + "/") as response:
            assert response.status == 200
            token = csrf_token_of(await response.text())
        async with session.post(UI + "/logout", data={}, allow_redirects=False) as response:
            assert response.status == 403
        async with session.post(
            UI + "/logout", data={"csrf": "forged"}, allow_redirects=False
        ) as response:
            assert response.status == 403
        async with session.post(
            UI + "/logout", data={"csrf": token}, allow_redirects=False
        ) as response:
            assert response.status == 303


async def test_a_cross_site_post_is_refused_even_with_the_token(cluster: LocalCluster) -> None:
    async with signed_in(cluster.url, TEST_ROOT) as session:
        async with session.get(UI + "/") as response:
            token = csrf_token_of(await response.text())
        headers = {"Origin": "http://evil.example"}
        async with session.post(
            UI + "/logout", data={"csrf": token}, headers=headers, allow_redirects=False
        ) as response:
            assert response.status == 403


async def test_the_api_routes_still_need_a_signature(cluster: LocalCluster) -> None:
    # The dashboard's cookie opens the dashboard only, not the JSON routes beside it.
    async with (
        signed_in(cluster.url, TEST_ROOT) as session,
        session.get("/_/nodes") as response,
    ):
        assert response.status == 403


async def test_static_files_are_cached_for_good(cluster: LocalCluster) -> None:
    async with browser_session(cluster.url) as session:
        async with session.get(UI + "/login") as response:
            page = await response.text()
        scripts = [part.split('"')[0] for part in page.split('src="')[1:]]
        assert scripts, page
        for src in scripts:
            async with session.get(src) as response:
                assert response.status == 200, src
                assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
                assert "javascript" in response.headers["Content-Type"]
        async with session.get(UI + "/static/vendor/htmx.min.js") as response:
            # Unversioned names are not served: a page always names the bytes it was made with.
            assert response.status == 404


async def test_an_unknown_key_is_refused_like_a_wrong_secret(cluster: LocalCluster) -> None:
    form = {"access_key_id": "NOSUCHKEY", "secret_access_key": "whatever-secret"}
    async with (
        aiohttp.ClientSession(cluster.url) as session,
        session.post(UI + "/login", data=form, allow_redirects=False) as response,
    ):
        assert response.status == 401
