"""Slow and greedy clients against a real gateway and real nodes, over raw sockets.

The gateway runs with short deadlines and small limits (``cluster_options``), so that each
case takes about one deadline: an upload whose body stalls is answered 408 and rolled back
(nothing listed, no chunk or temp file left, the nodes' free space back); a client that never
finishes its headers, or never sends a byte, is disconnected; an upload over the per-client
limit is answered 503 SlowDown with a Retry-After; a node refuses a gRPC message larger than a
block needs.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import (
    MIB,
    ClusterOptions,
    chunk_files,
    parse_raw_response,
    random_bytes,
    signed_head,
    temp_files,
    wait_until,
)

from diststorage.client import Client
from diststorage.core.cluster_tls import NODE_ROLE, ClusterLinks, issue, load_authority
from diststorage.core.ids import new_id
from diststorage.local import LocalCluster
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc

BODY_IDLE_S = 1.5
HEADER_READ_S = 1.5
PER_CLIENT = 2
MAX_CONNECTIONS = 12
NODE_MAX_MESSAGE = 8 * MIB
# How late an answer may come after its deadline on a loaded machine.
SLACK_S = 2.5


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # A capacity, so that a node's free space is its own accounting, not the shared disk's.
    return ClusterOptions(
        node_capacity_bytes=1 << 30,
        env={
            "DISTSTORAGE_GATEWAY_BODY_IDLE_TIMEOUT_S": str(BODY_IDLE_S),
            "DISTSTORAGE_GATEWAY_HEADER_READ_TIMEOUT_S": str(HEADER_READ_S),
            "DISTSTORAGE_GATEWAY_MAX_UPLOADS_PER_CLIENT": str(PER_CLIENT),
            "DISTSTORAGE_GATEWAY_UPLOAD_RETRY_AFTER_S": "3",
            "DISTSTORAGE_GATEWAY_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
            "DISTSTORAGE_NODE_MAX_MESSAGE_BYTES": str(NODE_MAX_MESSAGE),
            "DISTSTORAGE_GATEWAY_MAX_MESSAGE_BYTES": str(NODE_MAX_MESSAGE),
        },
    )


@pytest.fixture(scope="module")
def s3_port(cluster: LocalCluster) -> int:
    return cluster.s3_ports[0]


def read_answer(sock: socket.socket, timeout_s: float) -> bytes:
    """What the server sends until it closes the connection (or ``timeout_s`` passes)."""
    sock.settimeout(timeout_s)
    received = bytearray()
    with contextlib.suppress(TimeoutError, ConnectionResetError):
        while piece := sock.recv(65536):
            received += piece
    return bytes(received)


@contextlib.contextmanager
def stalled_upload(
    port: int, path: str, declared: int, sent: int, headers: dict[str, str] | None = None
) -> Iterator[socket.socket]:
    """A PUT that announces ``declared`` bytes, sends ``sent`` of them, then goes quiet."""
    head = signed_head("PUT", path, port, {"Content-Length": str(declared), **(headers or {})})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + random_bytes(sent))
        yield sock


def free_bytes(http: Client) -> dict[str, int]:
    return {node["id"]: node["free"] for node in http.nodes()}


def settled(cluster: LocalCluster, chunks_before: set[Path]) -> bool:
    return not (chunk_files(cluster) - chunks_before) and not temp_files(cluster)


# -- bodies that stall -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("declared", "sent"), [(100, 10), (200 * MIB, 5 * MIB)], ids=["10-of-100", "5MiB-of-200MiB"]
)
def test_stalled_body_is_answered_408_and_rolled_back(
    cluster: LocalCluster, http: Client, gateway_port: int, declared: int, sent: int
) -> None:
    """The review's "Content-Length: 100 with 10 bytes, then silence → no answer" and its
    stalled 255 MiB uploads: both now end at the body deadline with nothing left behind."""
    keys, chunks, free = http.list_keys(), chunk_files(cluster), free_bytes(http)
    with stalled_upload(gateway_port, f"/slow/{sent}", declared, sent) as sock:
        if sent > MIB:
            # While it stalls, the nodes hold a bounded reservation, not the announced size.
            time.sleep(0.5)
            for node_id, now_free in free_bytes(http).items():
                assert free[node_id] - now_free <= 40 * MIB, (node_id, free[node_id], now_free)
        started = time.monotonic()
        raw = read_answer(sock, BODY_IDLE_S + SLACK_S + 5)
        waited_s = time.monotonic() - started
    status, headers, body = parse_raw_response(raw)
    assert status == 408, raw[:300]
    assert headers["content-type"].startswith("application/json")
    assert b'"request_timeout"' in body, body
    assert waited_s <= BODY_IDLE_S + SLACK_S, waited_s
    assert http.list_keys() == keys
    assert wait_until(lambda: settled(cluster, chunks), 5.0), sorted(map(str, temp_files(cluster)))
    assert wait_until(lambda: free_bytes(http) == free, 10.0), (free, free_bytes(http))


def test_stalled_s3_body_is_request_timeout(s3: Any, s3_port: int) -> None:
    s3.create_bucket(Bucket="slow")
    with stalled_upload(s3_port, "/slow/key", 1000, 10) as sock:
        raw = read_answer(sock, BODY_IDLE_S + SLACK_S + 5)
    status, _, body = parse_raw_response(raw)
    assert status == 408, raw[:300]
    assert b"<Code>RequestTimeout</Code>" in body, body
    assert s3.list_objects_v2(Bucket="slow").get("KeyCount") == 0


def test_trickling_chunked_body_is_cut_at_the_deadline(gateway_port: int) -> None:
    """One byte per deadline and a half: each gap is over the deadline."""
    head = signed_head("PUT", "/slow/chunked", gateway_port, {"Transfer-Encoding": "chunked"})
    with socket.create_connection(("127.0.0.1", gateway_port), timeout=10) as sock:
        sock.sendall(head + b"1\r\na\r\n")
        raw = read_answer(sock, BODY_IDLE_S + SLACK_S + 5)
    status, _, body = parse_raw_response(raw)
    assert status == 408, raw[:300]
    assert b'"request_timeout"' in body


# -- heads that never end --------------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"GET / HTTP/1.1\r\nHost: x\r\n", b"GET / HT"])
def test_unfinished_head_is_disconnected(gateway_port: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", gateway_port), timeout=10) as sock:
        sock.sendall(sent)
        started = time.monotonic()
        raw = read_answer(sock, HEADER_READ_S + SLACK_S + 5)
        waited_s = time.monotonic() - started
    # Closed by the server within the deadline, with a 408 it may or may not still read.
    assert waited_s <= HEADER_READ_S + SLACK_S, waited_s
    if raw:
        status, _, body = parse_raw_response(raw)
        assert status == 408 and b'"request_timeout"' in body, raw[:300]


def test_trickled_headers_are_cut_at_the_deadline(gateway_port: int) -> None:
    """One header line every half second: the head as a whole is late."""
    with socket.create_connection(("127.0.0.1", gateway_port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        with contextlib.suppress(OSError):
            for number in range(20):
                time.sleep(0.5)
                sock.sendall(f"X-Line-{number}: v\r\n".encode())
        waited_s = time.monotonic() - started
        read_answer(sock, 1)
    assert waited_s <= HEADER_READ_S + SLACK_S + 0.5, waited_s


def test_keep_alive_connection_serves_a_second_request(gateway_port: int) -> None:
    """The head deadline counts from a request's first byte, not from the connection's
    opening: a client that waits between two requests is not cut."""
    request = b"GET /_/health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", gateway_port), timeout=10) as sock:
        sock.sendall(request)
        first = sock.recv(65536)
        time.sleep(HEADER_READ_S + 0.5)
        sock.sendall(request)
        second = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200") and second.startswith(b"HTTP/1.1 200"), second


# -- too many uploads ------------------------------------------------------------------------


def test_upload_over_the_per_client_limit_is_slow_down(
    http: Client, s3: Any, gateway_port: int, s3_port: int
) -> None:
    s3.create_bucket(Bucket="slots")
    with contextlib.ExitStack() as stack:
        for number in range(PER_CLIENT):
            stack.enter_context(stalled_upload(gateway_port, f"/slots/{number}", 1000, 10))
        time.sleep(0.3)
        response = http.put("slots/over", b"x" * 1000)
        assert response.status == 503, response.body
        assert response.json()["error"] == "slow_down"
        assert response.header("Retry-After") == "3"
        # The limit is the client's across both front ends.
        raw_s3 = raw_put(s3_port, "/slots/over", b"x" * 1000)
        status, headers, body = parse_raw_response(raw_s3)
        assert status == 503 and b"<Code>SlowDown</Code>" in body, raw_s3[:300]
        assert headers["retry-after"] == "3"
        # With Expect: 100-continue the refusal comes before the body is asked for.
        head = signed_head(
            "PUT",
            "/slots/expecting",
            gateway_port,
            {"Content-Length": "1000", "Expect": "100-continue"},
        )
        raw_expect = exchange(gateway_port, head)
        assert raw_expect.startswith(b"HTTP/1.1 503"), raw_expect[:300]
        # Reads are not uploads.
        assert http.health()[0] == 200
    # Once the stalled ones are answered (408), the client's slots are back.
    assert wait_until(lambda: http.put("slots/after", b"y" * 1000).status == 201, 10.0)


def raw_put(port: int, path: str, body: bytes) -> bytes:
    head = signed_head("PUT", path, port, {"Content-Length": str(len(body))})
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head + body)
        return read_answer(sock, 5)


# -- node gRPC -------------------------------------------------------------------------------


async def test_node_refuses_a_message_larger_than_a_block_needs(cluster: LocalCluster) -> None:
    """From a member of the cluster (a leaf of its CA), so only the size is at fault."""
    data = b"\0" * (NODE_MAX_MESSAGE + 1024)
    request = pb.PutChunkOnceRequest(
        header=pb.ChunkHeader(chunk_id="0" * 31 + "1", expected_bytes=len(data)),
        block=pb.Block(data=data, crc32c=0),
    )
    links = ClusterLinks(issue(load_authority(cluster.cluster_dir), NODE_ROLE, new_id()))
    options = [("grpc.max_send_message_length", 2 * NODE_MAX_MESSAGE)]
    async with links.channel(f"127.0.0.1:{cluster.node_ports[0]}", options) as channel:
        stub = pb_grpc.ChunkServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            await stub.PutChunkOnce(request, timeout=10)
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value


# -- too many connections --------------------------------------------------------------------


def test_connection_over_the_limit_is_answered_503(gateway_port: int) -> None:
    """Idle sockets up to the limit are held; those past it get a 503 at once (well before
    the held ones' head deadline, which answers 408)."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.create_connection(("127.0.0.1", gateway_port)))
            for _ in range(MAX_CONNECTIONS + 4)
        ]
        time.sleep(HEADER_READ_S / 2)
        answers = []
        for sock in socks:
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                answers.append(sock.recv(65536))
    refused = [answer for answer in answers if answer.startswith(b"HTTP/1.1 503")]
    # Four at least; the gateway may still count a connection of an earlier test.
    assert len(refused) >= 4, answers
    status, headers, body = parse_raw_response(refused[0])
    assert status == 503 and b'"slow_down"' in body, refused[0][:300]
    assert headers["retry-after"] == "3"
    # The gateway counts a connection until it has seen it close: the next test's connection
    # must not find the limit still reached.
    assert wait_until(lambda: not connection_refused(gateway_port), 10.0)


def connection_refused(port: int) -> bool:
    """A new connection is answered with the connection limit's 503."""
    probe = b"GET /_/health HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n"
    return b'"slow_down"' in exchange(port, probe)


# -- requests the HTTP parser refuses --------------------------------------------------------

HOST = b"Host: x\r\n"
MALFORMED = {
    "200-headers": b"GET / HTTP/1.1\r\n" + HOST + b"".join(b"X-%d: v\r\n" % n for n in range(200)),
    "9000-byte-header": b"GET / HTTP/1.1\r\n" + HOST + b"X-Big: " + b"v" * 9000 + b"\r\n",
    "9000-byte-request-line": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + HOST,
    "unknown-method": b"FOO /x HTTP/1.1\r\n" + HOST,
    "asterisk-form": b"PUT * HTTP/1.1\r\n" + HOST + b"Content-Length: 0\r\n",
    "negative-length": b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length: -1\r\n",
    "overflowing-length": b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length: " + b"9" * 30 + b"\r\n",
    "empty-length": b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length:\r\n",
    "length-and-chunked": b"PUT /x HTTP/1.1\r\n"
    + HOST
    + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
    "two-lengths": b"PUT /x HTTP/1.1\r\n" + HOST + b"Content-Length: 1\r\nContent-Length: 2\r\n",
}


@pytest.mark.parametrize("head", MALFORMED.values(), ids=MALFORMED.keys())
def test_parser_rejection_gets_the_json_error_body(gateway_port: int, head: bytes) -> None:
    raw = exchange(gateway_port, head + b"\r\n")
    status, headers, body = parse_raw_response(raw)
    assert status == 400, raw[:300]
    assert headers["content-type"].startswith("application/json"), headers
    answer = json.loads(body)
    assert answer["error"] == "bad_request", answer
    # The request's own bytes are not echoed back.
    assert b"vvvv" not in body and b"aaaa" not in body, body


@pytest.mark.parametrize("name", ["200-headers", "9000-byte-header", "unknown-method"])
def test_parser_rejection_on_s3_gets_xml(s3_port: int, name: str) -> None:
    raw = exchange(s3_port, MALFORMED[name] + b"\r\n")
    status, headers, body = parse_raw_response(raw)
    assert status == 400, raw[:300]
    assert headers["content-type"].startswith("application/xml"), headers
    assert b"<Code>BadRequest</Code>" in body and b"vvvv" not in body, body


def test_parser_rejections_log_one_line_each(cluster: LocalCluster, gateway_port: int) -> None:
    log_before = cluster.gateway_log_path().read_bytes()
    for _ in range(5):
        exchange(gateway_port, MALFORMED["200-headers"] + b"\r\n")
    time.sleep(0.3)
    written = cluster.gateway_log_path().read_bytes()[len(log_before) :]
    assert b"Traceback" not in written and b"Error handling request" not in written, written
    assert written.count(b"HTTP 400") == 5, written


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        return read_answer(sock, 5)
