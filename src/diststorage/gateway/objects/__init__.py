"""The write and read pipelines."""

from diststorage.gateway.objects.reader import ObjectReader, inline_bytes
from diststorage.gateway.objects.writer import ObjectWriter, PutRequest

__all__ = ["ObjectReader", "ObjectWriter", "PutRequest", "inline_bytes"]
