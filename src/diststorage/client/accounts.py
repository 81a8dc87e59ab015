"""The admin routes for access keys, buckets and grants (``/_/admin/``), as typed calls.

Every method raises ``ClientError`` for an error status (``key_not_found``, ``no_such_bucket``,
``bucket_already_exists``, ``access_denied``, ...). Only ``create_key`` answers a secret.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from diststorage.client.client import Client

ADMIN = "/_/admin"


def _segment(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class AccountsAdmin:
    """The admin routes of one gateway, through ``client`` (which signs, when it has keys)."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def _call(self, method: str, path: str, payload: dict[str, Any] | None = None) -> Any:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {} if body is None else {"Content-Type": "application/json"}
        response = self._client.request(method, ADMIN + path, body, headers)
        response.raise_for_status()
        return None if response.status == 204 else response.json()

    # -- keys --------------------------------------------------------------------------------

    def create_key(
        self, name: str, can_create_buckets: bool = True, is_admin: bool = False
    ) -> dict[str, Any]:
        """The new key, with ``access_key_id`` and ``secret_access_key`` (shown this once)."""
        payload = {"name": name, "can_create_buckets": can_create_buckets, "is_admin": is_admin}
        result: dict[str, Any] = self._call("POST", "/keys", payload)
        return result

    def list_keys(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/keys")
        return result

    def key(self, key_id: str) -> dict[str, Any]:
        """The key and its grants."""
        result: dict[str, Any] = self._call("GET", f"/keys/{_segment(key_id)}")
        return result

    def delete_key(self, key_id: str) -> None:
        self._call("DELETE", f"/keys/{_segment(key_id)}")

    def disable_key(self, key_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/keys/{_segment(key_id)}/disable", {})
        return result

    def enable_key(self, key_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", f"/keys/{_segment(key_id)}/enable", {})
        return result

    # -- buckets and grants ------------------------------------------------------------------

    def create_bucket(self, name: str, owner: str | None = None) -> dict[str, Any]:
        """Owned by ``owner`` (default: the key this client signs with)."""
        payload: dict[str, Any] = {"name": name}
        if owner is not None:
            payload["owner"] = owner
        result: dict[str, Any] = self._call("POST", "/buckets", payload)
        return result

    def list_buckets(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/buckets")
        return result

    def bucket(self, name: str) -> dict[str, Any]:
        """The bucket and its grants."""
        result: dict[str, Any] = self._call("GET", f"/buckets/{_segment(name)}")
        return result

    def delete_bucket(self, name: str) -> None:
        self._call("DELETE", f"/buckets/{_segment(name)}")

    def allow(
        self, bucket: str, key_id: str, read: bool = False, write: bool = False, owner: bool = False
    ) -> dict[str, Any]:
        """Adds these rights to the key's grant on the bucket; answers the grant."""
        return self._grant("allow", bucket, key_id, read, write, owner)

    def deny(
        self, bucket: str, key_id: str, read: bool = False, write: bool = False, owner: bool = False
    ) -> dict[str, Any]:
        """Takes these rights away (all of them when none is named); answers the grant."""
        return self._grant("deny", bucket, key_id, read, write, owner)

    def _grant(
        self, action: str, bucket: str, key_id: str, read: bool, write: bool, owner: bool
    ) -> dict[str, Any]:
        payload = {"key": key_id, "read": read, "write": write, "owner": owner}
        result: dict[str, Any] = self._call(
            "POST", f"/buckets/{_segment(bucket)}/{action}", payload
        )
        return result
