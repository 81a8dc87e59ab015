"""S3 request bodies in XML: ``read_xml``, the CompleteMultipartUpload parser
(``listed_parts``) and the DeleteObjects parser (``parse_delete_request``). Any bytes give a
document or MalformedXML / PayloadTooLarge, and a document gives its parts or keys or
MalformedXML; documents as clients write them come back exactly."""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET

from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import MalformedXML, PayloadTooLarge
from diststorage.gateway.s3.delete_objects import DeleteRequest, ToDelete, parse_delete_request
from diststorage.gateway.s3.multipart_xml import COMPLETE_ROOT, checksum_element, listed_parts
from diststorage.gateway.s3.xml import XML_ILLEGAL, child, document, read_xml, to_bytes
from diststorage.meta import ListedPart, StoredChecksum
from diststorage.s3auth import ChecksumAlgorithm

from .strategies import mutated

MAX_BYTES = 4096
# Text an XML document can carry: no characters XML 1.0 forbids, no lone surrogates.
XML_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30).filter(
    lambda text: not XML_ILLEGAL.search(text)
)
BLANKS = st.sampled_from(["", " ", "\n", "\t "])


class Body:
    """A request body that arrives in pieces of the given sizes (``ByteSource``)."""

    def __init__(self, data: bytes, piece: int) -> None:
        self._data = data
        self._piece = piece

    async def read_up_to(self, size: int) -> bytes:
        taken = self._data[: min(size, self._piece)]
        self._data = self._data[len(taken) :]
        return taken


def _read(data: bytes, piece: int = 4096) -> ET.Element:
    return asyncio.run(read_xml(Body(data, piece), MAX_BYTES))


def _parses(root: ET.Element) -> None:
    """Each body parser on the document: a result or MalformedXML, nothing else."""
    for parser in (listed_parts, parse_delete_request):
        with contextlib.suppress(MalformedXML):
            parser(root)


@given(st.binary(max_size=MAX_BYTES + 64), st.integers(1, 5000))
@example(b'<?xml version="1.0" encoding="bogus"?><Delete/>', 4096)
@example(b'<?xml version="1.0" encoding="utf-16"?><Delete/>', 4096)
@example(b'<!DOCTYPE d [<!ENTITY e "x">]><Delete>&e;</Delete>', 4096)
@example(b"<a>" * 2000, 4096)
@example(b"\xff\xfe<\x00a\x00/\x00>\x00", 4096)
@example(b"<Delete>&#0;</Delete>", 4096)
@example(b"x" * (MAX_BYTES + 1), 7)
def test_any_bytes_are_a_document_or_the_documented_errors(data: bytes, piece: int) -> None:
    try:
        root = _read(data, piece)
    except PayloadTooLarge:
        assert len(data) > MAX_BYTES
        return
    except MalformedXML:
        return
    assert len(data) <= MAX_BYTES
    _parses(root)


@st.composite
def complete_documents(draw: st.DrawFn) -> tuple[bytes, list[ListedPart]]:
    """A CompleteMultipartUpload body as clients write it, and the parts it names."""
    root = document(COMPLETE_ROOT)
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        number = draw(st.integers(0, 999_999_999))
        etag = '"' + draw(st.text("0123456789abcdef", min_size=1, max_size=32)) + '"'
        part = child(root, "Part")
        child(part, "PartNumber", draw(BLANKS) + str(number) + draw(BLANKS))
        child(part, "ETag", draw(BLANKS) + etag + draw(BLANKS))
        checksum = None
        if draw(st.booleans()):
            algorithm = draw(st.sampled_from(list(ChecksumAlgorithm)))
            value = draw(st.from_regex(r"[A-Za-z0-9+/]{1,40}={0,2}", fullmatch=True))
            child(part, checksum_element(algorithm), value)
            checksum = StoredChecksum(algorithm.value, "FULL_OBJECT", value)
        parts.append(ListedPart(number, etag, checksum))
    return to_bytes(root), parts


@st.composite
def delete_documents(draw: st.DrawFn) -> tuple[bytes, DeleteRequest]:
    """A DeleteObjects body, keys of any text XML can carry (``\\r`` and blanks included)."""
    root = document("Delete")
    quiet = draw(st.booleans())
    if quiet or draw(st.booleans()):
        child(
            root,
            "Quiet",
            draw(BLANKS)
            + draw(st.sampled_from(["true", "True", "TRUE"]) if quiet else st.just("false"))
            + draw(BLANKS),
        )
    items = []
    for _ in range(draw(st.integers(1, 8))):
        key = draw(st.one_of(XML_TEXT, st.sampled_from(["\r", " a ", "a\r\nb", "&<>'\""])))
        version = draw(st.one_of(st.none(), st.just("null"), XML_TEXT))
        element = child(root, "Object")
        child(element, "Key", key)
        if version is not None:
            child(element, "VersionId", version)
        items.append(ToDelete(key, version))
    return to_bytes(root), DeleteRequest(tuple(items), quiet)


@given(complete_documents())
def test_a_complete_document_gives_back_its_parts(
    written: tuple[bytes, list[ListedPart]],
) -> None:
    data, parts = written
    assert listed_parts(_read(data)) == [
        ListedPart(part.part_number, part.etag.strip(), part.checksum) for part in parts
    ]


@given(delete_documents(), st.integers(1, 64))
def test_a_delete_document_gives_back_its_keys(
    written: tuple[bytes, DeleteRequest], piece: int
) -> None:
    data, request = written
    assert parse_delete_request(_read(data, piece)) == request


@given(
    st.one_of(
        complete_documents().map(lambda pair: pair[0]), delete_documents().map(lambda pair: pair[0])
    ),
    st.integers(0, 10_000),
    st.integers(0, 255),
    st.integers(0, 2),
)
def test_a_damaged_document_is_a_document_or_the_documented_errors(
    data: bytes, at: int, byte: int, how: int
) -> None:
    try:
        root = _read(mutated(data, at, byte, how))
    except (MalformedXML, PayloadTooLarge):
        return
    _parses(root)
