"""S3's XML, out and in.

Out: ElementTree documents in S3's namespace, with ``\\r`` written as ``&#13;`` (ElementTree
leaves it raw, and a parser turns a raw ``\\r`` into ``\\n``: a key holding one would come
back as another key, S3.md pitfall 12). In: request bodies read in full only up to a cap and
parsed with defusedxml, DTDs refused (no entity bombs), elements matched by local name so that
bodies with and without the S3 namespace both work.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

from aiohttp import web
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from diststorage.core.errors import MalformedXML, PayloadTooLarge
from diststorage.gateway.objects.ports import ByteSource

S3_XMLNS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_CONTENT_TYPE = "application/xml"
_READ_PIECE = 64 * 1024


# Characters XML 1.0 cannot carry at all, not even as character references.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """Text as an XML document can carry it: each character XML cannot hold written as
    ``\\xNN`` (for messages, which may quote what a client sent)."""
    return XML_ILLEGAL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def document(root_tag: str) -> ET.Element:
    return ET.Element(root_tag, xmlns=S3_XMLNS)


def child(parent: ET.Element, tag: str, text: str | int | None = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


def to_bytes(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body.replace(b"\r", b"&#13;")


def xml_response(
    root: ET.Element, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=to_bytes(root), content_type=XML_CONTENT_TYPE, headers=headers
    )


def timestamp(moment: datetime) -> str:
    """ISO 8601 with milliseconds in UTC, as S3 writes LastModified and Initiated."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z"
    )


def quoted(etag: str) -> str:
    return f'"{etag}"'


async def read_xml(body: ByteSource, max_bytes: int) -> ET.Element:
    """The body's XML document; PayloadTooLarge past ``max_bytes``, MalformedXML for
    anything that is not one well-formed document without a DTD."""
    pieces: list[bytes] = []
    size = 0
    while piece := await body.read_up_to(_READ_PIECE):
        size += len(piece)
        if size > max_bytes:
            raise PayloadTooLarge(f"this request's XML body may hold at most {max_bytes} bytes")
        pieces.append(piece)
    try:
        root: ET.Element = fromstring(b"".join(pieces), forbid_dtd=True)
    # LookupError: an XML declaration naming an encoding Python does not know.
    except (ET.ParseError, DefusedXmlException, ValueError, LookupError):
        raise MalformedXML(
            "The XML you provided was not well-formed or did not validate against our "
            "published schema."
        ) from None
    return root


def local_name(element: ET.Element) -> str:
    return element.tag.rpartition("}")[2]


def children_named(element: ET.Element, name: str) -> list[ET.Element]:
    return [item for item in element if local_name(item) == name]


def text_of(element: ET.Element, name: str) -> str | None:
    """The text of the first child named ``name`` ("" when empty); None when there is none."""
    for item in element:
        if local_name(item) == name:
            return item.text or ""
    return None
