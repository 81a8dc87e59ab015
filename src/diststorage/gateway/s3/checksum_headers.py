"""A stored flexible checksum as S3 hands it back: ``x-amz-checksum-<algo>`` and
``x-amz-checksum-type``. Objects answer them on GET and HEAD only under
``x-amz-checksum-mode: ENABLED`` and never on a 206 (S3.md pitfall 4); UploadPart and
CompleteMultipartUpload always."""

from __future__ import annotations

from collections.abc import Mapping

from diststorage.meta import StoredChecksum
from diststorage.s3auth.checksums import header_name, parse_algorithm

CHECKSUM_MODE_HEADER = "x-amz-checksum-mode"


def checksum_headers(checksum: StoredChecksum | None) -> dict[str, str]:
    if checksum is None:
        return {}
    return {
        header_name(parse_algorithm(checksum.algorithm)): checksum.value,
        "x-amz-checksum-type": checksum.kind,
    }


def checksum_mode_enabled(headers: Mapping[str, str]) -> bool:
    return headers.get(CHECKSUM_MODE_HEADER, "").upper() == "ENABLED"
