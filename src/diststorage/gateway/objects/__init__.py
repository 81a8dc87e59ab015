"""The write and read pipelines."""

from diststorage.gateway.objects.reader import ObjectReader
from diststorage.gateway.objects.writer import ObjectWriter, PutRequest

__all__ = ["ObjectReader", "ObjectWriter", "PutRequest"]
