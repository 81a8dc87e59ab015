"""S3 handlers: objects (being written)."""

from __future__ import annotations

from diststorage.gateway.s3.call import S3Handlers

HANDLERS: S3Handlers = {}
