"""Python client for the gateway's HTTP API, used by the CLI, tests and benchmarks."""

from diststorage.client.client import Client, ClientError

__all__ = ["Client", "ClientError"]
