"""The JSON document of an object, as the native API answers it (a PUT, a listing entry) and as
the layout route starts it: one shape wherever an object is described."""

from __future__ import annotations

from typing import Any

from diststorage.meta import ObjectInfo


def object_json(info: ObjectInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "size": info.size_bytes,
        "md5": info.md5_hex,
        "etag": f'"{info.etag}"',
        "content_type": info.content_type,
        "redundancy": info.policy,
        "last_modified": info.created_at.isoformat(),
    }
