import os
import sys
from pathlib import Path

import pytest

from diststorage.node.writeback import start_writeback

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def test_the_kernel_takes_the_hint_for_a_file_being_written(tmp_path: Path) -> None:
    with open(tmp_path / "chunk", "wb") as file:
        file.write(os.urandom(1 << 20))
        file.flush()
        assert start_writeback(file.fileno())


def test_a_descriptor_that_is_no_file_is_refused_without_raising(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    os.close(write_end)
    assert not start_writeback(write_end)
