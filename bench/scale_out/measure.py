"""What the scale-out benchmark times in one configuration beside the 4 KiB cases
(``bench.common.ops``, spread round-robin over the gateways): a large object uploaded (curl)
through the first gateway and downloaded through the last, with ``bench.common.curl``'s calls
and checks, each step's CPU measured by ``bench.common.cpu.CpuMeter``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from bench.common.cpu import CpuMeter, CpuUse
from bench.common.curl import Transfer, check_download, curl_download, curl_upload
from bench.common.report import size_label

T = TypeVar("T")
# A case stops after its operation count or this long, whichever comes first.
OPS_TIME_CAP_S = 900.0


# -- one large object --------------------------------------------------------------------------


@dataclass
class TransferRecord:
    transfer: Transfer
    gateway: int  # index into the configuration's gateways
    cpu: CpuUse


def large_object(
    urls: list[str],
    key: str,
    source: Path,
    source_md5: str,
    size: int,
    workdir: Path,
    meter: CpuMeter,
    settle: Callable[[], None],
) -> list[TransferRecord]:
    """Uploads ``source`` through the first gateway, then downloads it through the last: a
    timed download into /dev/null (size and ETag checked), then an untimed one into a file,
    hashed and compared with the source (as bench.transfer does, so that filling the page cache
    does not cost the timed download a CPU-second). Stops at the first transfer that fails."""
    first, last = 0, len(urls) - 1
    records: list[TransferRecord] = []
    settle()
    with meter.measure(f"upload {size_label(size)} via gateway {first + 1}") as cpu:
        up = curl_upload(urls[first], key, source, size, source_md5)
    records.append(TransferRecord(up, first, cpu))
    if not up.ok:
        return records
    target = workdir / "download.bin"
    headers = workdir / "download.headers"
    try:
        settle()
        with meter.measure(f"download {size_label(size)} via gateway {last + 1}") as cpu:
            down, etag = curl_download(urls[last], key, Path(os.devnull), headers, size)
        if down.status == 200 and not down.detail:
            check_download(down, None, etag, source_md5)
        records.append(TransferRecord(down, last, cpu))
        if not down.ok:
            return records
        with meter.measure(f"verify {size_label(size)} via gateway {last + 1}") as cpu:
            verify, etag = curl_download(urls[last], key, target, headers, size, "verify")
        if verify.status == 200 and not verify.detail:
            check_download(verify, target, etag, source_md5)
        records.append(TransferRecord(verify, last, cpu))
    finally:
        target.unlink(missing_ok=True)
        headers.unlink(missing_ok=True)
    return records
