"""S3 handler for DeleteObjects (``POST /bucket?delete``): up to 1000 keys in one request.

- **Integrity**: S3 requires the body to carry Content-MD5 or, since the flexible checksums,
  an ``x-amz-checksum-*`` (boto3 ≥ 1.36 sends only ``x-amz-checksum-crc32``; servers that kept
  demanding MD5 broke it, S3.md §1). Either is checked by the verifying body at the body's end,
  before any key is deleted; with neither the request is refused as AWS refuses it.
- **Parsing**: at most 2 MiB of XML, read whole and parsed without DTDs (``xml.read_xml``), so
  an entity bomb is MalformedXML in bounded memory. More than 1000 keys, none, or an element
  S3 does not define where a key must be is MalformedXML too: nothing is deleted then.
- **Results**: a key with no object is reported Deleted (deleting is idempotent, as on AWS);
  a key that fails is an ``<Error>`` entry with its own code, and the others go on. Quiet mode
  reports only the errors. Keys go back as they came, ``\\r`` included (``xml.to_bytes``).
- **Concurrency**: a few deletes run at once, each its own metadata transaction; results
  keep the request's order.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from diststorage.core.errors import (
    DiststorageError,
    InvalidRequest,
    MalformedXML,
    ObjectNotFound,
    PayloadTooLarge,
)
from diststorage.gateway.http.callers import request_body
from diststorage.gateway.objects.operations import DeleteOperation
from diststorage.gateway.s3.addressing import check_key
from diststorage.gateway.s3.call import S3Call, S3Handlers
from diststorage.gateway.s3.routing import Op
from diststorage.gateway.s3.xml import (
    child,
    children_named,
    document,
    local_name,
    read_xml,
    text_of,
    xml_response,
)

MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_KEYS = 1000
# Deletes in flight at once: each is one short metadata transaction; more would only queue
# behind the database's writer.
PARALLEL_DELETES = 8
# The one version an unversioned bucket has; any other version id names nothing.
NULL_VERSION = "null"
_MALFORMED = (
    "The XML you provided was not well-formed or did not validate against our published schema."
)


@dataclass(frozen=True, slots=True)
class ToDelete:
    key: str
    version_id: str | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """One key's result: deleted when ``code`` is None, else the S3 error code and message."""

    item: ToDelete
    code: str | None = None
    message: str = ""


@dataclass(frozen=True, slots=True)
class DeleteRequest:
    items: tuple[ToDelete, ...]
    quiet: bool


async def delete_objects(call: S3Call) -> web.StreamResponse:
    request = parse_delete_request(await _read_body(call))
    outcomes = await _delete_all(call, request.items)
    return xml_response(delete_result(outcomes, request.quiet))


async def _read_body(call: S3Call) -> ET.Element:
    """The verified XML body. Raises InvalidRequest without Content-MD5 or a checksum,
    PayloadTooLarge past MAX_BODY_BYTES, BadDigest and its kin for a body that fails them."""
    declared = call.request.content_length
    if declared is not None and declared > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a DeleteObjects body may hold at most {MAX_BODY_BYTES} bytes")
    body, checks = request_body(call.request, declared, MAX_BODY_BYTES)
    if checks.md5 is None and checks.checksum is None and checks.trailer is None:
        raise InvalidRequest("Missing required header for this request: Content-MD5")
    return await read_xml(body, MAX_BODY_BYTES)


def parse_delete_request(root: ET.Element) -> DeleteRequest:
    """The keys of a ``<Delete>`` document; MalformedXML for anything else."""
    if local_name(root) != "Delete":
        raise MalformedXML(_MALFORMED)
    quiet = (text_of(root, "Quiet") or "false").strip().lower()
    if quiet not in ("true", "false"):
        raise MalformedXML(_MALFORMED)
    objects = children_named(root, "Object")
    if not objects or len(objects) > MAX_KEYS:
        raise MalformedXML(_MALFORMED)
    items = []
    for element in objects:
        key = text_of(element, "Key")
        if key is None:
            raise MalformedXML(_MALFORMED)
        items.append(ToDelete(key, text_of(element, "VersionId")))
    return DeleteRequest(tuple(items), quiet == "true")


async def _delete_all(call: S3Call, items: tuple[ToDelete, ...]) -> list[Outcome]:
    outcomes: list[Outcome | None] = [None] * len(items)
    indexes = iter(range(len(items)))

    async def worker(pending: Iterator[int]) -> None:
        for index in pending:
            outcomes[index] = await _delete_one(call, items[index])

    async with asyncio.TaskGroup() as group:
        for _ in range(min(PARALLEL_DELETES, len(items))):
            group.create_task(worker(indexes))
    return [outcome for outcome in outcomes if outcome is not None]


async def _delete_one(call: S3Call, item: ToDelete) -> Outcome:
    if item.version_id is not None and item.version_id != NULL_VERSION:
        return Outcome(item, "NoSuchVersion", "The specified version does not exist.")
    try:
        check_key(item.key)
        await call.services.writer.delete(DeleteOperation(call.bucket, item.key))
    except ObjectNotFound:
        pass  # already gone: S3 reports it deleted
    except DiststorageError as error:
        return Outcome(item, error.s3_code, error.message)
    return Outcome(item)


def delete_result(outcomes: list[Outcome], quiet: bool) -> ET.Element:
    root = document("DeleteResult")
    for outcome in outcomes:
        if outcome.code is None and quiet:
            continue
        entry = child(root, "Deleted" if outcome.code is None else "Error")
        child(entry, "Key", outcome.item.key)
        if outcome.item.version_id is not None:
            child(entry, "VersionId", outcome.item.version_id)
        if outcome.code is not None:
            child(entry, "Code", outcome.code)
            child(entry, "Message", outcome.message)
    return root


HANDLERS: S3Handlers = {Op.DELETE_OBJECTS: delete_objects}
