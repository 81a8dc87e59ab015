import sys

import pytest

from diststorage.core.memory import TRIM_GROWTH_BYTES, HeapTrimmer, resident_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")


def _grow_and_fragment_heap() -> list[bytes]:
    """Allocates ~3× the trim threshold in heap-sized pieces, then frees most of them while
    keeping every 16th alive, so that the freed pages sit between live ones."""
    pieces = [bytes(4096) for _ in range(3 * TRIM_GROWTH_BYTES // 4096)]
    kept = pieces[::16]
    pieces.clear()
    return kept


async def test_an_idle_process_gives_its_grown_heap_back() -> None:
    trimmer = HeapTrimmer(busy=lambda: False)
    await trimmer.work()  # settles at the current size
    kept = _grow_and_fragment_heap()
    grown = resident_bytes()
    await trimmer.work()
    assert trimmer.trims == 1
    assert resident_bytes() < grown - TRIM_GROWTH_BYTES
    assert len(kept) > 0


async def test_a_busy_process_is_left_alone() -> None:
    trimmer = HeapTrimmer(busy=lambda: True)
    await trimmer.work()
    kept = _grow_and_fragment_heap()
    await trimmer.work()
    assert trimmer.trims == 0
    assert len(kept) > 0


async def test_a_process_that_did_not_grow_is_not_trimmed() -> None:
    trimmer = HeapTrimmer(busy=lambda: False)
    await trimmer.work()
    await trimmer.work()
    assert trimmer.trims == 0
