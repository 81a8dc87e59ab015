"""The gateway client against a small HTTP server in a thread: what it sends, and what it makes
of what comes back (statuses passed through, error bodies, streaming, deadlines, key quoting)."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from diststorage.cli.main import app
from diststorage.client import Client, ClientError, TransportError, quote_key

PIECE = 1 << 20


@dataclass
class Seen:
    """One request as the server read it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


def json_answer(status: int, payload: Any) -> Answer:
    return Answer(status, json.dumps(payload).encode(), {"Content-Type": "application/json"})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a handler still sleeping for a timeout test is not waited for

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.seen: list[Seen] = []
        self.answer: Callable[[Seen], Answer] = lambda seen: Answer()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that gave up (the timeout tests) is expected: stay quiet."""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Server

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = bytearray()
            while size := int(self.rfile.readline().split(b";")[0], 16):
                parts += self.rfile.read(size)
                self.rfile.readline()
            self.rfile.readline()
            return bytes(parts)
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _serve(self) -> None:
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, b"")
        seen.body = self._body()
        self.server.seen.append(seen)
        answer = self.server.answer(seen)
        time.sleep(answer.delay_s)
        self.send_response(answer.status)
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    # http.server looks handlers up by these names.
    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _serve  # noqa: N815

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.shutdown()
        running.server_close()
        thread.join(10)


def test_error_statuses_come_back_as_sent(server: Server) -> None:
    server.answer = lambda seen: Answer(404, b'{"error":"x"}', {"X-Extra": "kept"})
    response = Client(server.url).get("some/key")
    assert (response.status, response.body) == (404, b'{"error":"x"}')
    assert response.header("x-extra") == "kept"
    assert response.reason == "Not Found"


def test_an_error_body_becomes_a_client_error(server: Server) -> None:
    server.answer = lambda seen: json_answer(409, {"error": "already_exists", "message": "taken"})
    with pytest.raises(ClientError) as raised:
        Client(server.url).put_stream(b"data", "k", replace=False)
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        409,
        "already_exists",
        "taken",
    )
    assert server.seen[-1].method == "POST"


def test_an_error_without_a_json_body_is_an_http_error(server: Server) -> None:
    server.answer = lambda seen: Answer(502, b"<html>bad gateway</html>")
    with pytest.raises(ClientError) as raised:
        Client(server.url).nodes()
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        502,
        "http_error",
        "Bad Gateway",
    )


def test_stat_of_a_missing_key_is_not_found(server: Server) -> None:
    server.answer = lambda seen: Answer(404)
    with pytest.raises(ClientError) as raised:
        Client(server.url).stat("gone")
    assert (raised.value.status, raised.value.code) == (404, "not_found")
    assert server.seen[-1].method == "HEAD"


def test_keys_are_percent_encoded(server: Server) -> None:
    client = Client(server.url)
    client.put("dir/a b/ü?#%+", b"x")
    client.delete("dir/a b/ü?#%+")
    expected = "/dir/a%20b/%C3%BC%3F%23%25%2B"
    assert [seen.path for seen in server.seen] == [expected, expected]
    assert quote_key("dir/a b/ü?#%+") == expected


def test_a_path_in_the_url_prefixes_every_request(server: Server) -> None:
    server.answer = lambda seen: json_answer(200, {"status": "ok"})
    client = Client(server.url + "/base/")
    client.get("k")
    assert client.health() == (200, {"status": "ok"})
    assert [seen.path for seen in server.seen] == ["/base/k", "/base/_/health"]


def test_health_answers_a_503_instead_of_raising(server: Server) -> None:
    server.answer = lambda seen: json_answer(503, {"status": "degraded"})
    assert Client(server.url).health() == (503, {"status": "degraded"})


def test_a_file_goes_up_in_pieces_with_its_length(server: Server, tmp_path: Path) -> None:
    data = bytes(range(256)) * (10 * 1024 + 7)  # 2.5 MiB and a bit: three pieces
    source = tmp_path / "upload.bin"
    source.write_bytes(data)
    server.answer = lambda seen: json_answer(201, {"key": "k", "size": len(seen.body)})
    pieces: list[int] = []
    result = Client(server.url).put_file(source, "k", redundancy="ec:2+1", progress=pieces.append)
    assert result == {"key": "k", "size": len(data)}
    seen = server.seen[-1]
    assert (seen.method, seen.body) == ("PUT", data)
    assert seen.headers["content-length"] == str(len(data))
    assert seen.headers["x-redundancy"] == "ec:2+1"
    assert "transfer-encoding" not in seen.headers
    assert pieces == [PIECE, PIECE, len(data) - 2 * PIECE]


def test_a_body_of_unknown_length_goes_chunked(server: Server) -> None:
    pieces = [b"first ", b"second ", b"third"]
    response = Client(server.url).put("k", iter(pieces))
    assert response.status == 200
    seen = server.seen[-1]
    assert seen.headers["transfer-encoding"] == "chunked"
    assert seen.body == b"".join(pieces)


def test_downloads_stream_in_pieces(server: Server) -> None:
    data = bytes(range(251)) * 13_000  # 3.1 MiB
    server.answer = lambda seen: Answer(200, data, {"ETag": '"abc"'})
    client = Client(server.url)
    sink = io.BytesIO()
    pieces: list[int] = []
    headers = client.get_to("big", sink, pieces.append)
    assert sink.getvalue() == data
    assert headers["etag"] == '"abc"'
    assert len(pieces) >= 4 and max(pieces) <= PIECE and sum(pieces) == len(data)
    streamed = client.get_streamed("/big")
    assert (streamed.status, streamed.size) == (200, len(data))
    assert streamed.md5 == hashlib.md5(data, usedforsecurity=False).hexdigest()
    with client.stream("GET", "/big") as response:
        assert response.read(10) == data[:10]
        assert response.read() == data[10:]


def test_a_failed_download_writes_nothing(server: Server) -> None:
    server.answer = lambda seen: json_answer(404, {"error": "object_not_found", "message": "no"})
    sink = io.BytesIO()
    with pytest.raises(ClientError) as raised:
        Client(server.url).get_to("gone", sink)
    assert raised.value.code == "object_not_found"
    assert sink.getvalue() == b""


def test_listing_follows_every_page(server: Server) -> None:
    pages = {
        "": {"objects": [{"key": "a"}, {"key": "b"}], "truncated": True, "next_after": "b"},
        "b": {"objects": [{"key": "c"}], "truncated": False, "next_after": None},
    }

    def answer(seen: Seen) -> Answer:
        after = seen.path.partition("after=")[2].partition("&")[0]
        return json_answer(200, pages[after])

    server.answer = answer
    assert Client(server.url).list_keys("p/", limit=2) == ["a", "b", "c"]
    assert [seen.path for seen in server.seen] == [
        "/?prefix=p%2F&limit=2",
        "/?prefix=p%2F&after=b&limit=2",
    ]


def test_node_routes(server: Server) -> None:
    server.answer = lambda seen: json_answer(202, {"id": "n1", "lifecycle": "draining"})
    client = Client(server.url)
    assert client.set_node_lifecycle("n1", "drain") == {"id": "n1", "lifecycle": "draining"}
    server.answer = lambda seen: Answer(204)
    client.remove_node("n1", force=True)
    assert [(seen.method, seen.path) for seen in server.seen] == [
        ("POST", "/_/nodes/n1/drain"),
        ("DELETE", "/_/nodes/n1?force=true"),
    ]


def test_a_slow_answer_passes_the_read_deadline(server: Server) -> None:
    server.answer = lambda seen: Answer(200, b"late", delay_s=2.0)
    started = time.monotonic()
    with pytest.raises(TransportError) as raised:
        Client(server.url, read_timeout_s=0.2).get("slow")
    assert time.monotonic() - started < 1.5
    assert (raised.value.status, raised.value.code) == (0, "unreachable")
    assert server.url in raised.value.message


def test_a_refused_connection_is_unreachable() -> None:
    with socket.socket() as placeholder:  # a port that nothing listens on
        placeholder.bind(("127.0.0.1", 0))
        port = placeholder.getsockname()[1]
    with pytest.raises(TransportError) as raised:
        Client(f"http://127.0.0.1:{port}").health()
    assert (raised.value.status, raised.value.code) == (0, "unreachable")
    assert isinstance(raised.value, ClientError)


@pytest.mark.parametrize(
    ("url", "timeouts"),
    [
        ("ftp://host/", (1.0, 1.0)),
        ("host:7001", (1.0, 1.0)),
        ("http://host:port", (1.0, 1.0)),
        ("http://host/?q=1", (1.0, 1.0)),
        ("http://h:1", (0.0, 1.0)),
    ],
)
def test_a_bad_url_or_timeout_is_refused_at_once(url: str, timeouts: tuple[float, float]) -> None:
    with pytest.raises(ValueError):
        Client(url, *timeouts)


def test_host_and_port() -> None:
    assert (Client("http://127.0.0.1:7001").host, Client("http://127.0.0.1:7001").port) == (
        "127.0.0.1",
        7001,
    )
    assert Client("https://gateway.example").port == 443


# -- the CLI's client verbs on top ------------------------------------------------------------


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_cli_put_prints_what_was_stored(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(b"hello\n")
    stored = {"key": "notes.txt", "size": 6, "md5": "b1946ac9", "redundancy": "inline"}
    server.answer = lambda seen: json_answer(201, stored)
    result = run_cli("put", str(source), "--url", server.url)
    assert (result.exit_code, result.stdout) == (0, "notes.txt  6 bytes  md5 b1946ac9  inline\n")
    assert server.seen[-1].method == "PUT"


def test_cli_put_create_of_a_taken_key_fails(server: Server, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(b"hello\n")
    server.answer = lambda seen: json_answer(409, {"error": "already_exists", "message": "taken"})
    result = run_cli("put", str(source), "k", "--create", "--url", server.url)
    assert (result.exit_code, result.stdout) == (1, "")
    assert result.stderr == "error: already_exists: taken\n"
    assert server.seen[-1].method == "POST"


def test_cli_stat_and_a_missing_key(server: Server) -> None:
    headers = {"ETag": '"e"', "Content-Type": "text/plain", "X-Redundancy": "inline"}
    server.answer = lambda seen: Answer(200, b"", headers)
    result = run_cli("stat", "k", "--url", server.url)
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        " Content-Length: 0",
        '           ETag: "e"',
        "   Content-Type: text/plain",
        "   X-Redundancy: inline",
        "  Last-Modified: ",
    ]
    server.answer = lambda seen: Answer(404)
    result = run_cli("get", "gone", "-", "--url", server.url)
    assert (result.exit_code, result.stderr) == (1, "error: not_found: HEAD gone: Not Found\n")


def test_cli_get_to_stdout_and_rm(server: Server) -> None:
    server.answer = lambda seen: Answer(200, b"the bytes")
    result = run_cli("get", "k", "-", "--url", server.url)
    assert (result.exit_code, result.stdout) == (0, "the bytes")
    server.answer = lambda seen: json_answer(404, {"error": "object_not_found", "message": "no"})
    result = run_cli("rm", "k", "--url", server.url)
    assert (result.exit_code, result.stderr) == (1, "error: object_not_found: no\n")
    assert server.seen[-1].method == "DELETE"
