"""The gateway: HTTP API, write and read pipelines, node inventory, garbage deletion."""

from diststorage.gateway.app import serve_gateway
from diststorage.gateway.processes import run_gateway

__all__ = ["run_gateway", "serve_gateway"]
