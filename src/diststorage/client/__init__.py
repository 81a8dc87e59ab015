"""Python client for the gateway's HTTP API, used by the CLI, tests and benchmarks."""

from diststorage.client.client import Body, Client, Progress, quote_key
from diststorage.client.errors import ClientError, TransportError
from diststorage.client.response import Response, StreamedGet, StreamingResponse
from diststorage.core.credentials import Credentials

__all__ = [
    "Body",
    "Client",
    "ClientError",
    "Credentials",
    "Progress",
    "Response",
    "StreamedGet",
    "StreamingResponse",
    "TransportError",
    "quote_key",
]
