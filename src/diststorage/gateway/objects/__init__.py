"""The write and read pipelines, and the typed operations front ends hand them."""

from diststorage.gateway.objects.chunkset import ChunkSetWriter
from diststorage.gateway.objects.operations import (
    ByteRange,
    DeleteOperation,
    GetOperation,
    HeadOperation,
    ListOperation,
    ObjectOperation,
    PartOf,
    PutOperation,
    RangeSpec,
)
from diststorage.gateway.objects.reader import NodePenalties, ObjectReader, inline_bytes
from diststorage.gateway.objects.writer import ObjectWriter

__all__ = [
    "ByteRange",
    "ChunkSetWriter",
    "DeleteOperation",
    "GetOperation",
    "HeadOperation",
    "ListOperation",
    "NodePenalties",
    "ObjectOperation",
    "ObjectReader",
    "ObjectWriter",
    "PartOf",
    "PutOperation",
    "RangeSpec",
    "inline_bytes",
]
