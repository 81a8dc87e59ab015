"""Fault injection on a ``LocalCluster``: its processes and its nodes' chunk files.

Exactly these faults, each undone by its counterpart:

- a node or a gateway killed with SIGKILL (``kill_node``, ``kill_gateway``), later started
  again on the same data folder and port (``restart_node``, ``restart_gateway``);
- a node paused with SIGSTOP (``pause_node``) and continued with SIGCONT (``resume_node``);
  ``paused_node`` does both around a block;
- one byte of a chunk file flipped (``flip_byte``; ``corrupted`` restores the files after a
  block), or chunk files moved away and back (``removed``).

No network fault is injected. The methods block until the signal is sent (a kill also waits
for the process to be reaped); none waits for the gateway to notice, which is the caller's to
check through the gateway's own reports.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from diststorage.local import LocalCluster

# What a flipped byte is XORed with: any non-zero value breaks a block's checksum.
FLIP_MASK = 0x5A


@dataclass(frozen=True)
class Faults:
    """Faults injected into ``cluster``'s processes and files."""

    cluster: LocalCluster

    # -- processes ------------------------------------------------------------------------------

    def kill_node(self, index: int) -> None:
        """SIGKILL node ``index`` and reap it; ``restart_node`` starts it again."""
        self.cluster.kill_node(index)

    def restart_node(self, index: int) -> None:
        """Starts node ``index`` again on its folder and port."""
        self.cluster.start_node(index)

    def pause_node(self, index: int) -> None:
        """SIGSTOP node ``index``: it holds its sockets open and answers nothing."""
        self.cluster.signal_node(index, signal.SIGSTOP)

    def resume_node(self, index: int) -> None:
        """SIGCONT node ``index`` (harmless for a node that is not paused)."""
        self.cluster.signal_node(index, signal.SIGCONT)

    @contextlib.contextmanager
    def paused_node(self, index: int) -> Iterator[None]:
        """Node ``index`` paused for the block, continued however the block ends."""
        self.pause_node(index)
        try:
            yield
        finally:
            self.resume_node(index)

    def kill_gateway(self, index: int = 0) -> None:
        """SIGKILL gateway ``index`` and reap it; ``restart_gateway`` starts it again."""
        self.cluster.kill_gateway(index)

    def restart_gateway(self, index: int = 0) -> None:
        self.cluster.start_gateway(index)

    def restore_nodes(self) -> None:
        """Continues every paused node and starts every node that is not running."""
        for index in range(self.cluster.nodes):
            self.resume_node(index)
            if not self.cluster.node_running(index):
                self.restart_node(index)

    # -- chunk files ----------------------------------------------------------------------------

    def chunk_files(self, nodes: Iterable[int] | None = None) -> set[Path]:
        """Every committed chunk file on the given nodes (default: all)."""
        found: set[Path] = set()
        for index in range(self.cluster.nodes) if nodes is None else nodes:
            root = self.node_chunks_dir(index)
            if not root.is_dir():
                continue
            for fanout in os.scandir(root):
                if fanout.is_dir():
                    found.update(Path(entry.path) for entry in os.scandir(fanout.path))
        return found

    def node_chunks_dir(self, index: int) -> Path:
        return self.cluster.node_data_dir(index) / "chunks"

    @staticmethod
    def flip_byte(path: Path, position: int | None = None) -> None:
        """Flips the byte at ``position`` of the file (default: a third of the way in)."""
        data = bytearray(path.read_bytes())
        data[len(data) // 3 if position is None else position] ^= FLIP_MASK
        path.write_bytes(bytes(data))

    @staticmethod
    @contextlib.contextmanager
    def corrupted(paths: list[Path], at: float = 0.5) -> Iterator[None]:
        """Flips one byte inside each file (at the fraction ``at`` of its length) for the block,
        then writes the original bytes back however the block ends."""
        originals = {path: path.read_bytes() for path in paths}
        try:
            for path, data in originals.items():
                Faults.flip_byte(path, int(len(data) * at))
            yield
        finally:
            for path, data in originals.items():
                path.write_bytes(data)

    @staticmethod
    @contextlib.contextmanager
    def removed(paths: list[Path], keep: Path) -> Iterator[None]:
        """Moves the files into the folder ``keep`` for the block, then puts them back."""
        moved: dict[Path, Path] = {}
        try:
            for number, path in enumerate(paths):
                moved[path] = keep / f"{number}-{path.name}"
                shutil.move(path, moved[path])
            yield
        finally:
            for path, saved in moved.items():
                shutil.move(saved, path)
