"""Dashboard sessions: a signed cookie that every gateway of the cluster accepts, and the CSRF
token derived from it.

The cookie is ``v1.<access key id>.<expiry, unix seconds>.<MAC>``, the MAC an HMAC-SHA256 under
a key derived from the master key (which every gateway of a cluster shares) over the version,
key id, expiry and a digest of the key's secret. So any gateway can check a session without
shared state, a session ends when its expiry passes, and it is worth nothing once its key is
disabled, deleted, loses its admin right or gets another secret: the key is looked up again
on every request (``KeyCache``, a few seconds of caching), never trusted from the cookie.

The CSRF token is an HMAC of the cookie's value under the same key: a page the session opened
carries it in its forms (and htmx in a header); a cross-site request knows neither.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass

from diststorage.core.secrets import MasterKey
from diststorage.gateway.auth.keys import KeyCache
from diststorage.gateway.auth.ports import Principal

SESSION_COOKIE = "diststorage_ui"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SESSION_TTL_S = 12 * 3600
_VERSION = "v1"
_PURPOSE = "diststorage dashboard session v1"


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    cookie: str  # the cookie's value, which the CSRF token is bound to
    expires_at: int  # unix seconds


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class Sessions:
    """Issues and checks session cookies and CSRF tokens."""

    def __init__(self, master: MasterKey, keys: KeyCache, ttl_s: int = SESSION_TTL_S) -> None:
        self._mac_key = master.derive(_PURPOSE)
        self._keys = keys
        self.ttl_s = ttl_s

    def _mac(self, key_id: str, expires_at: int, secret: str) -> str:
        secret_digest = hashlib.sha256(secret.encode()).hexdigest()
        message = f"{_VERSION}|{key_id}|{expires_at}|{secret_digest}".encode()
        return _b64(hmac.new(self._mac_key, message, hashlib.sha256).digest())

    def issue(self, key_id: str, secret: str, now_s: float | None = None) -> str:
        """A cookie value for a key whose secret was just checked."""
        expires_at = int(now_s if now_s is not None else time.time()) + self.ttl_s
        return f"{_VERSION}.{key_id}.{expires_at}.{self._mac(key_id, expires_at, secret)}"

    async def check(self, cookie: str | None, now_s: float | None = None) -> Session | None:
        """The session the cookie opens, or None: malformed, forged, expired, or its key no
        longer active with the admin right. Raises Unavailable when the key store is."""
        if not cookie:
            return None
        # Key ids may hold dots themselves: the other fields are counted from the ends.
        version, _, rest = cookie.partition(".")
        parts = rest.rsplit(".", 2)
        if version != _VERSION or len(parts) != 3 or not parts[1].isdigit():
            return None
        key_id, expiry_text, mac = parts
        expires_at = int(expiry_text)
        if expires_at <= (now_s if now_s is not None else time.time()):
            return None
        known = await self._keys.key(key_id)
        if known is None or not known.active or not known.principal.is_admin:
            return None
        if not hmac.compare_digest(mac, self._mac(key_id, expires_at, known.secret)):
            return None
        return Session(known.principal, cookie, expires_at)

    def csrf_token(self, session: Session) -> str:
        message = f"csrf|{session.cookie}".encode()
        return _b64(hmac.new(self._mac_key, message, hashlib.sha256).digest())

    def csrf_ok(self, session: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(token, self.csrf_token(session))

    async def login(self, key_id: str, secret: str) -> str | None:
        """A new cookie value when the pair is an active admin key's, else None (one answer
        for every failure, so that a guess learns nothing of which part was wrong)."""
        known = await self._keys.key(key_id) if key_id else None
        # Compared even for an unknown key, so that both take the same time.
        expected = known.secret if known is not None else "\0" * max(len(secret), 1)
        matches = hmac.compare_digest(secret.encode(), expected.encode())
        if known is None or not matches or not known.active or not known.principal.is_admin:
            return None
        return self.issue(key_id, secret)
