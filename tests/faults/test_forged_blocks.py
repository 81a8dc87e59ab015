"""No forged byte served: a block rewritten on a node's disk, its CRC-32C left valid, is caught by
the digest the gateway recorded at commit, with real processes.

Faults injected: one block of a chunk file overwritten in place with other bytes whose last four
are solved so the block keeps its CRC-32C (``forge_block``; CRC-32C is linear, so this takes 33
CRCs). The trailer is untouched and the node's own check passes, as does the CRC the metadata
holds: only the digest tells the block apart. Also: a node killed (degraded read), a chunk file
removed, and the digests of an object removed from the metadata (an object written before
digests were recorded). Multipart parts and S3 copies, through boto3. Every test ends with every
object left md5-correct and the cluster back at full redundancy.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import crc32c
import pytest
from conftest import (
    MIB,
    ClusterOptions,
    error_code,
    md5_hex,
    node_ids,
    object_chunks,
    random_bytes,
    restore_nodes,
    s3_client,
    upload_in_parts,
    wait_live_nodes,
    wait_until,
)

from diststorage.client import Client
from diststorage.local import LocalCluster
from diststorage.node.chunkfile import read_index
from diststorage.testing import Faults

STRIPE = 64 * 1024
BLOCK = STRIPE // 4  # ec:4+2
# Generous: repair runs after its grace period, on a 2-core machine that also runs the tests.
HEAL_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # Seven nodes, so ec:4+2 can be read and rebuilt in full while one is gone.
    return ClusterOptions(
        nodes=7,
        gateway_args=(
            "--stripe-size",
            str(STRIPE),
            "--node-timeout",
            "3",
            "--node-suspect",
            "1.5",
            "--repair-grace",
            "2",
            "--repair-rate",
            str(200 * MIB),
        ),
    )


@pytest.fixture(autouse=True)
def healed(cluster: LocalCluster, http: Client) -> Iterator[None]:
    """After each test: every node running, and nothing left to repair."""
    yield
    restore_nodes(cluster, http)
    wait_fully_redundant(http)


def wait_fully_redundant(http: Client) -> None:
    last: dict[str, object] = {}

    def done() -> bool:
        last.update(http.repair())
        return last["stripes_below_target"] == 0 and last["segments_queued"] == 0

    assert wait_until(done, HEAL_TIMEOUT_S, 0.5), last


def same_crc_forgery(original: bytes, payload: bytes) -> bytes:
    """Bytes as long as ``original`` that begin with ``payload`` and have its CRC-32C: the
    last four bytes are solved for it (CRC-32C is affine over GF(2) for a fixed length)."""
    assert len(payload) <= len(original) - 4
    base = bytearray(payload + b"\0" * (len(original) - len(payload)))
    base_crc = crc32c.crc32c(base)
    # Pivot bit -> (the CRC change, the bits of the last four bytes that make it).
    basis: dict[int, tuple[int, int]] = {}
    for bit in range(32):
        flipped = bytearray(base)
        flipped[-4 + bit // 8] ^= 1 << (bit % 8)
        change, made_of = crc32c.crc32c(flipped) ^ base_crc, 1 << bit
        while change:
            pivot = change.bit_length() - 1
            if pivot not in basis:
                basis[pivot] = (change, made_of)
                break
            change ^= basis[pivot][0]
            made_of ^= basis[pivot][1]
    wanted, flips = crc32c.crc32c(original) ^ base_crc, 0
    while wanted:
        change, made_of = basis[wanted.bit_length() - 1]
        wanted ^= change
        flips ^= made_of
    base[-4:] = bytes(a ^ b for a, b in zip(base[-4:], flips.to_bytes(4, "little"), strict=True))
    forged = bytes(base)
    assert crc32c.crc32c(forged) == crc32c.crc32c(original) and forged != original
    return forged


def forge_block(path: Path, block_index: int) -> None:
    """Overwrites one block of a chunk file in place with other bytes of the same CRC-32C;
    the trailer, and so the node's index and check, stay as they were."""
    fd = os.open(path, os.O_RDWR)
    try:
        entry = read_index(fd, os.fstat(fd).st_size).blocks[block_index]
        original = os.pread(fd, entry.length, entry.offset)
        os.pwrite(fd, same_crc_forgery(original, b"THIS BLOCK WAS FORGED "), entry.offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def put(http: Client, key: str, size: int, policy: str = "ec:4+2") -> bytes:
    data = random_bytes(size)
    response = http.put(key, data, {"X-Redundancy": policy})
    assert response.status == 201, response.body
    return data


def assert_reads(http: Client, key: str, data: bytes) -> None:
    got = http.get(key)
    assert got.status == 200, (key, got.status, got.body[:300])
    assert md5_hex(got.body) == md5_hex(data), key


def wait_replaced(cluster: LocalCluster, key: str, paths: set[Path]) -> None:
    """Until none of the chunk files is the object's any more (repair swapped them out)."""

    def replaced() -> bool:
        return not paths & {c.path for c in object_chunks(cluster, key)}

    assert wait_until(replaced, HEAL_TIMEOUT_S, 0.5), paths


def test_the_forgery_keeps_the_crc_the_node_and_the_metadata_check() -> None:
    original = random_bytes(BLOCK)
    forged = same_crc_forgery(original, b"THIS BLOCK WAS FORGED ")
    assert forged.startswith(b"THIS BLOCK WAS FORGED ") and len(forged) == len(original)
    assert crc32c.crc32c(forged) == crc32c.crc32c(original)


def test_a_ranged_read_never_serves_a_forged_block_and_repair_replaces_it(
    cluster: LocalCluster, http: Client
) -> None:
    key = "forged/ranged"
    data = put(http, key, 17 * STRIPE + 5)
    victim = object_chunks(cluster, key)[1]  # a data shard: reads go to it first
    forge_block(victim.path, 5)
    # The first read after the forgery: a range inside stripe 5 alone (one unary block read).
    start, end = 5 * STRIPE + 100, 5 * STRIPE + 40_000
    got = http.get(key, {"Range": f"bytes={start}-{end}"})
    assert got.status == 206, got.body[:300]
    assert got.body == data[start : end + 1]
    wait_replaced(cluster, key, {victim.path})
    assert_reads(http, key, data)


def test_a_whole_read_falls_back_from_a_forged_block_and_repair_replaces_it(
    cluster: LocalCluster, http: Client
) -> None:
    key = "forged/whole"
    data = put(http, key, 40 * STRIPE + 9)
    victim = object_chunks(cluster, key)[0]
    forge_block(victim.path, 30)
    assert_reads(http, key, data)
    wait_replaced(cluster, key, {victim.path})
    assert_reads(http, key, data)
    assert wait_until(lambda: not victim.path.exists(), 30.0), victim


def test_a_degraded_read_meets_a_forged_block(cluster: LocalCluster, http: Client) -> None:
    key = "forged/degraded"
    data = put(http, key, 12 * STRIPE + 1)
    chunks = object_chunks(cluster, key)
    forged, gone = chunks[0], chunks[2]
    forge_block(forged.path, 3)
    Faults(cluster).kill_node(gone.node)
    wait_live_nodes(http, cluster.nodes - 1, timeout_s=15)
    # Shards 1 and 3 and both parities are all that is left for stripe 3: exactly enough.
    assert_reads(http, key, data)
    restore_nodes(cluster, http)
    wait_replaced(cluster, key, {forged.path})
    assert_reads(http, key, data)


def test_repair_never_rebuilds_from_a_forged_block(cluster: LocalCluster, http: Client) -> None:
    key = "forged/repair-source"
    data = put(http, key, 20 * STRIPE + 3)
    chunks = object_chunks(cluster, key)
    missing, forged = chunks[0], chunks[1]
    forge_block(forged.path, 7)
    missing.path.unlink()
    # A read of stripe 0 alone meets the missing chunk, not the forged block: repair of the
    # segment then reads every stripe, the forged one among them, from the shards left.
    got = http.get(key, {"Range": "bytes=0-99"})
    assert got.status == 206 and got.body == data[:100]
    wait_replaced(cluster, key, {missing.path, forged.path})
    # Data shards are read first: a shard rebuilt from forged bytes would carry digests of
    # the forgery and be served.
    assert_reads(http, key, data)


def test_every_replica_forged_is_an_error_never_the_forgery(
    cluster: LocalCluster, http: Client
) -> None:
    key = "forged/replicas"
    data = put(http, key, 3 * STRIPE, policy="replicate:3")
    for chunk in object_chunks(cluster, key):
        forge_block(chunk.path, 0)
    got = http.get(key)
    assert got.status == 503, (got.status, got.body[:300])
    assert error_code(got) == "data_loss"
    assert b"THIS BLOCK WAS FORGED" not in got.body and data[:100] not in got.body
    # Nothing sound is left to rebuild from: the object goes, so the cluster can heal.
    assert http.delete(key).status == 204


def test_an_object_from_before_digests_is_read_and_checked_by_crc(
    cluster: LocalCluster, http: Client
) -> None:
    key = "forged/legacy"
    data = put(http, key, 9 * STRIPE + 7)
    chunk_ids = forget_digests(cluster, key)
    assert chunk_ids
    assert_reads(http, key, data)
    got = http.get(key, {"Range": f"bytes={STRIPE}-{2 * STRIPE - 1}"})
    assert got.status == 206 and got.body == data[STRIPE : 2 * STRIPE]
    # Bit rot is still caught (by the CRC), and the rebuilt chunk gets digests.
    victim = object_chunks(cluster, key)[0]
    Faults.flip_byte(victim.path, 10)
    assert_reads(http, key, data)
    wait_replaced(cluster, key, {victim.path})
    assert_reads(http, key, data)
    assert digests_of(cluster, key)[object_chunks(cluster, key)[0].path.name]


def forget_digests(cluster: LocalCluster, key: str) -> list[str]:
    """Makes the object look written before digests were recorded: NULL in every chunk row."""
    ids = [c.path.name for c in object_chunks(cluster, key)]
    with _database(cluster, read_only=False) as connection:
        connection.executemany(
            "UPDATE chunks SET block_digests = NULL WHERE id = ?", [(i,) for i in ids]
        )
    return ids


def digests_of(cluster: LocalCluster, key: str) -> dict[str, bytes | None]:
    ids = [c.path.name for c in object_chunks(cluster, key)]
    with _database(cluster, read_only=True) as connection:
        rows = connection.execute(
            f"SELECT id, block_digests FROM chunks WHERE id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
    return {chunk_id: digests for chunk_id, digests in rows}


@contextmanager
def _database(cluster: LocalCluster, read_only: bool) -> Iterator[sqlite3.Connection]:
    """The gateway's SQLite database, opened beside the running gateway; committed on a
    clean exit."""
    path = cluster.data_dir / "gateway" / "metadata.db"
    mode = "?mode=ro" if read_only else ""
    connection = sqlite3.connect(f"file:{path}{mode}", uri=True, timeout=10)
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()


def test_every_chunk_written_records_one_digest_per_block(
    cluster: LocalCluster, http: Client
) -> None:
    key = "forged/recorded"
    put(http, key, 6 * STRIPE + 2)
    recorded = digests_of(cluster, key)
    assert len(recorded) == 6
    assert all(d is not None and len(d) == 7 * 32 for d in recorded.values()), recorded


# -- multipart parts and copies ----------------------------------------------------------------

BUCKET = "forged"


@pytest.fixture(scope="module")
def s3(cluster: LocalCluster) -> Any:
    client = s3_client(cluster)
    client.create_bucket(Bucket=BUCKET)
    return client


def part_chunk_paths(cluster: LocalCluster, key: str) -> list[list[Path]]:
    """Per part of the committed object under ``key``, its chunk files in shard order."""
    by_node_id = node_ids(cluster)
    with _database(cluster, read_only=True) as connection:
        rows = connection.execute(
            "SELECT p.part_index, c.node_id, c.id, c.block_digests"
            " FROM objects o JOIN object_parts p ON p.object_id = o.id"
            " JOIN chunks c ON c.object_id = p.part_object_id"
            " WHERE o.key = ? AND o.state = 'committed'"
            " ORDER BY p.part_index, c.segment_index, c.shard_index",
            (key.encode(),),
        ).fetchall()
    parts: dict[int, list[Path]] = {}
    for part, node_id, chunk_id, digests in rows:
        assert digests, f"part {part} chunk {chunk_id} has no digests"
        node_dir = Faults(cluster).node_chunks_dir(by_node_id[node_id])
        parts.setdefault(part, []).append(node_dir / chunk_id[:2] / chunk_id)
    return [parts[p] for p in sorted(parts)]


def s3_body(s3: Any, key: str, byte_range: str | None = None) -> bytes:
    extra = {"Range": byte_range} if byte_range else {}
    body: bytes = s3.get_object(Bucket=BUCKET, Key=key, **extra)["Body"].read()
    return body


def test_forged_blocks_in_the_parts_of_a_multipart_object_are_never_served(
    cluster: LocalCluster, http: Client, s3: Any
) -> None:
    key = "multipart"
    parts = [random_bytes(5 * MIB), random_bytes(MIB + 11)]
    upload_in_parts(s3, BUCKET, key, parts)
    chunks = part_chunk_paths(cluster, key)
    first, second = chunks[0][1], chunks[1][0]
    forge_block(first, 10)
    forge_block(second, 3)
    # A range in the second part first (only that part is read), then the whole object.
    start = len(parts[0]) + 3 * STRIPE + 7
    assert s3_body(s3, key, f"bytes={start}-{start + 999}") == parts[1][3 * STRIPE + 7 :][:1000]
    assert md5_hex(s3_body(s3, key)) == md5_hex(b"".join(parts))

    def replaced() -> bool:
        now = {path for part in part_chunk_paths(cluster, key) for path in part}
        return not {first, second} & now

    assert wait_until(replaced, HEAL_TIMEOUT_S, 0.5)
    assert md5_hex(s3_body(s3, key)) == md5_hex(b"".join(parts))


def test_a_copy_never_copies_a_forged_block(cluster: LocalCluster, http: Client, s3: Any) -> None:
    data = random_bytes(11 * STRIPE + 3)
    s3.put_object(Bucket=BUCKET, Key="copy-source", Body=data)
    forge_block(object_chunks(cluster, "copy-source")[0].path, 4)
    s3.copy_object(
        Bucket=BUCKET, Key="copy-target", CopySource={"Bucket": BUCKET, "Key": "copy-source"}
    )
    assert md5_hex(s3_body(s3, "copy-target")) == md5_hex(data)
    assert all(digests_of(cluster, "copy-target").values())
    # The copy has chunks of its own: forging one is caught the same way.
    forge_block(object_chunks(cluster, "copy-target")[1].path, 2)
    assert md5_hex(s3_body(s3, "copy-target")) == md5_hex(data)
    assert md5_hex(s3_body(s3, "copy-source")) == md5_hex(data)
