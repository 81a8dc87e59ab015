"""What a multipart Complete decides from the parts it lists and the parts stored, before it
writes anything: which part rows become the object's, its ETag and its flexible checksum.
Pure, so each rule is tested on its own; the store runs it inside Complete's transaction."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from diststorage.core.errors import (
    BadDigest,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
)
from diststorage.meta.multipart_records import ChecksumCombiner, ListedPart
from diststorage.meta.records import StoredChecksum


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part row as Complete needs it."""

    part_number: int
    part_object_id: str
    size_bytes: int
    md5_hex: str
    checksum: StoredChecksum | None
    policy: str
    stripe_size_bytes: int
    segment_stripes: int
    gateway_id: str


def chosen_parts(
    listed: Sequence[ListedPart], stored: Mapping[int, StoredPart], min_part_bytes: int
) -> list[StoredPart]:
    """The stored parts the request lists, in its order, once every rule holds: at least one
    part, numbers strictly ascending (gaps allowed), each uploaded with the ETag given (quotes
    or none) and the checksum given, if any, and every part but the last at least
    ``min_part_bytes`` long."""
    if not listed:
        raise InvalidRequest("a Complete must list at least one part")
    numbers = [p.part_number for p in listed]
    if any(later <= earlier for earlier, later in itertools.pairwise(numbers)):
        raise InvalidPartOrder("the parts must be listed in ascending order of part number")
    chosen = []
    for part in listed:
        found = stored.get(part.part_number)
        if found is None or _unquoted(part.etag) != found.md5_hex:
            raise InvalidPart(f"part {part.part_number} was not uploaded with ETag {part.etag}")
        _check_listed_checksum(part, found)
        chosen.append(found)
    for small in chosen[:-1]:
        if small.size_bytes < min_part_bytes:
            raise EntityTooSmall(
                f"part {small.part_number} is {small.size_bytes} bytes; every part but the "
                f"last must be at least {min_part_bytes}"
            )
    return chosen


def _unquoted(etag: str) -> str:
    return etag.strip().removeprefix('"').removesuffix('"').lower()


def _check_listed_checksum(listed: ListedPart, stored: StoredPart) -> None:
    """A checksum listed for a part must be the one it was uploaded with, when it was
    uploaded with one of that algorithm (an upload created without an algorithm may still
    see per-part checksums in its Complete)."""
    given = listed.checksum
    if given is None or stored.checksum is None:
        return
    if given.algorithm != stored.checksum.algorithm or given.value != stored.checksum.value:
        raise InvalidPart(
            f"part {listed.part_number} was uploaded with {stored.checksum.algorithm} "
            f"{stored.checksum.value}, not {given.algorithm} {given.value}"
        )


def multipart_md5(parts: Sequence[StoredPart]) -> str:
    """The MD5 of the parts' binary MD5s, in order: with ``-N`` appended, the object's ETag."""
    joined = b"".join(bytes.fromhex(p.md5_hex) for p in parts)
    return hashlib.md5(joined, usedforsecurity=False).hexdigest()


def object_checksum(
    algorithm: str | None,
    kind: str | None,
    parts: Sequence[StoredPart],
    combine: ChecksumCombiner,
) -> StoredChecksum | None:
    """The completed object's flexible checksum: none unless the upload was created with an
    algorithm, and then every part must carry that algorithm's checksum."""
    if algorithm is None:
        return None
    values = []
    for part in parts:
        if part.checksum is None or part.checksum.algorithm != algorithm:
            raise InvalidPart(f"part {part.part_number} has no {algorithm} checksum")
        values.append((part.checksum.value, part.size_bytes))
    kind = kind or "COMPOSITE"
    return StoredChecksum(algorithm, kind, combine(algorithm, kind, values))


def check_expected(computed: StoredChecksum | None, expected: StoredChecksum | None) -> None:
    """A Complete may name the whole object's checksum (``x-amz-checksum-*``), a composite one
    with or without its ``-N``; BadDigest when it is not the one the parts make."""
    if expected is None:
        return
    if computed is None or computed.algorithm != expected.algorithm:
        raise BadDigest(f"the upload's parts make no {expected.algorithm} checksum")
    given, own = expected.value.strip(), computed.value
    if given != own and (computed.kind != "COMPOSITE" or given != own.rpartition("-")[0]):
        raise BadDigest(f"the {expected.algorithm} checksum {given} is not the parts' {own}")
