"""The HTTP API: parse requests, call the pipelines, map errors to statuses once."""

from diststorage.gateway.api.errors import json_errors
from diststorage.gateway.api.routes import SERVICES, dispatch

__all__ = ["SERVICES", "dispatch", "json_errors"]
