"""The HTTP API: parse requests, call the pipelines, map errors to statuses once."""

from diststorage.gateway.api.app import build_http_app

__all__ = ["build_http_app"]
