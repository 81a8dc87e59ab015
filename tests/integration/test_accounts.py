"""Accounts against a real cluster: the operator's CLI, who may do what on the native API and
the ``/_/`` routes, ``curl --aws-sigv4``, a refusal before ``100 Continue``, and secrets that
never show in the gateway's log, its ``/_/`` answers or its database file."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    MIB,
    TEST_ROOT,
    error_code,
    gateway_client,
    md5_hex,
    random_bytes,
    signed_head,
)

from diststorage.client import Client, Credentials
from diststorage.core.credentials import read_credentials_file, write_credentials_file
from diststorage.local import LocalCluster, free_port

CLI_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def root_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("creds") / "root.json"
    write_credentials_file(path, TEST_ROOT)
    return path


def cli(
    cluster: LocalCluster, credentials: Path | None, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``diststorage ARGS`` against the cluster, signing with the credentials file given (none:
    an environment without root keys, run from an empty folder)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTSTORAGE_ROOT", "AWS_"))}
    given = ["--credentials", str(credentials)] if credentials is not None else []
    return subprocess.run(
        [sys.executable, "-m", "diststorage", *args, "--url", cluster.url, *given],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def created_key(http: Client, name: str, **flags: bool) -> Credentials:
    made = http.accounts.create_key(name, **flags)
    return Credentials(made["access_key_id"], made["secret_access_key"])


def as_key(cluster: LocalCluster, credentials: Credentials | None) -> Client:
    return gateway_client(cluster.url, credentials)


# -- the operator's CLI ----------------------------------------------------------------------


def cli_key(cluster: LocalCluster, root_file: Path, name: str) -> Credentials:
    made = cli(cluster, root_file, "key", "create", name, "--json")
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    return Credentials(key["access_key_id"], key["secret_access_key"])


def test_the_cli_creates_lists_and_shows_keys(cluster: LocalCluster, root_file: Path) -> None:
    alice = cli_key(cluster, root_file, "alice")
    assert len(alice.access_key_id) == 20 and len(alice.secret_access_key) == 40
    plain = cli(cluster, root_file, "key", "create", "bob", "--no-create-bucket")
    assert plain.returncode == 0, plain.stderr
    assert "access_key_id:" in plain.stdout and "secret_access_key:" in plain.stdout
    listed = cli(cluster, root_file, "key", "list", "--json")
    assert alice.access_key_id in listed.stdout
    assert alice.secret_access_key not in listed.stdout
    info = json.loads(cli(cluster, root_file, "key", "info", alice.access_key_id).stdout)
    assert info["name"] == "alice" and info["state"] == "active"
    assert cli(cluster, root_file, "key", "delete", alice.access_key_id).returncode == 0
    gone = cli(cluster, root_file, "key", "info", alice.access_key_id)
    assert gone.returncode == 1 and "key_not_found" in gone.stderr


def test_the_cli_manages_buckets(cluster: LocalCluster, root_file: Path) -> None:
    carol = cli_key(cluster, root_file, "carol")
    owned = ["bucket", "create", "carol-photos", "--owner", carol.access_key_id]
    assert cli(cluster, root_file, *owned).returncode == 0
    bucket = json.loads(cli(cluster, root_file, "bucket", "info", "carol-photos").stdout)
    assert bucket["owner"] == carol.access_key_id
    assert bucket["grants"] == [
        {
            "bucket": "carol-photos",
            "key": carol.access_key_id,
            "read": True,
            "write": True,
            "owner": True,
        }
    ]
    assert "carol-photos" in cli(cluster, root_file, "bucket", "list").stdout
    assert cli(cluster, root_file, "bucket", "delete", "carol-photos").returncode == 0
    gone = cli(cluster, root_file, "bucket", "info", "carol-photos")
    assert gone.returncode == 1 and "no_such_bucket" in gone.stderr


def test_the_cli_grants_and_revokes(cluster: LocalCluster, root_file: Path) -> None:
    dave = cli_key(cluster, root_file, "dave")
    http = as_key(cluster, dave)
    assert http.get("cli/object").status == 403, "no grant on default yet"
    allow = ["bucket", "allow", "default", "--key", dave.access_key_id, "--read", "--write"]
    allowed = cli(cluster, root_file, *allow)
    assert allowed.returncode == 0 and "read, write" in allowed.stdout, allowed.stdout
    assert http.put("cli/object", b"by dave").status == 201
    deny_write = ["bucket", "deny", "default", "--key", dave.access_key_id, "--write"]
    assert cli(cluster, root_file, *deny_write).returncode == 0
    assert http.get("cli/object").body == b"by dave"
    assert error_code(http.put("cli/object", b"again")) == "access_denied"
    assert cli(cluster, root_file, "key", "disable", dave.access_key_id).returncode == 0
    assert error_code(http.get("cli/object")) == "invalid_access_key_id"
    assert cli(cluster, root_file, "key", "enable", dave.access_key_id).returncode == 0
    assert http.get("cli/object").status == 200
    deny_all = ["bucket", "deny", "default", "--key", dave.access_key_id]
    assert cli(cluster, root_file, *deny_all).returncode == 0
    assert http.get("cli/object").status == 403
    assert gateway_client(cluster.url).delete("cli/object").status == 204


def test_the_cli_without_credentials_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    unsigned = cli(cluster, None, "key", "list", cwd=tmp_path)
    assert unsigned.returncode == 1 and "access_denied" in unsigned.stderr


def test_the_client_verbs_sign_too(cluster: LocalCluster, root_file: Path, tmp_path: Path) -> None:
    source = tmp_path / "up.bin"
    source.write_bytes(random_bytes(3000))
    assert cli(cluster, root_file, "put", str(source), "cli/put").returncode == 0
    assert "cli/put" in cli(cluster, root_file, "ls", "cli/").stdout
    target = tmp_path / "down.bin"
    assert cli(cluster, root_file, "get", "cli/put", str(target)).returncode == 0
    assert target.read_bytes() == source.read_bytes()
    assert cli(cluster, root_file, "rm", "cli/put").returncode == 0
    assert cli(cluster, None, "ls", cwd=tmp_path).returncode == 1


# -- who may do what -------------------------------------------------------------------------

SYSTEM_ROUTES = ("/_/nodes", "/_/repair", "/_/metrics", "/_/admin/keys", "/_/admin/buckets")


def test_unsigned_requests_are_refused_but_health(cluster: LocalCluster) -> None:
    anonymous = as_key(cluster, None)
    for response in (
        anonymous.put("auth/unsigned", b"x"),
        anonymous.request("POST", "/auth/unsigned", b"x"),
        anonymous.get("auth/unsigned"),
        anonymous.head("auth/unsigned"),
        anonymous.delete("auth/unsigned"),
        anonymous.request("GET", "/"),
        *(anonymous.request("GET", path) for path in SYSTEM_ROUTES),
        anonymous.request("POST", "/_/admin/keys", b'{"name": "sneaky"}'),
    ):
        assert response.status == 403, response.body
        if response.body:
            assert error_code(response) == "access_denied"
    assert anonymous.health()[0] == 200
    assert anonymous.request("HEAD", "/_/health").status == 200
    assert gateway_client(cluster.url).get("auth/unsigned").status == 404, "nothing was stored"
    assert all(k["name"] != "sneaky" for k in gateway_client(cluster.url).accounts.list_keys())


def test_a_wrong_secret_or_an_unknown_key_is_refused(cluster: LocalCluster) -> None:
    wrong = as_key(cluster, Credentials(TEST_ROOT.access_key_id, "not-the-root-secret"))
    assert error_code(wrong.put("auth/wrong", b"x")) == "signature_does_not_match"
    assert error_code(wrong.request("GET", "/_/nodes")) == "signature_does_not_match"
    unknown = as_key(cluster, Credentials("DSNOSUCHKEYATALL000", "whatever-secret"))
    assert error_code(unknown.get("auth/wrong")) == "invalid_access_key_id"
    assert gateway_client(cluster.url).get("auth/wrong").status == 404


# Expected status per operation class on the bucket ``default``, per grant.
MATRIX = {
    "none": {"read": 403, "write": 403},
    "read": {"read": 200, "write": 403},
    "write": {"read": 403, "write": 201},
    "owner": {"read": 403, "write": 403},  # Garage's: owner alone is neither read nor write
}


@pytest.mark.parametrize("grant", list(MATRIX))
def test_what_a_grant_on_default_allows(cluster: LocalCluster, grant: str) -> None:
    root = gateway_client(cluster.url)
    assert root.put(f"matrix/{grant}", b"there").status == 201
    key = created_key(root, f"matrix-{grant}")
    if grant != "none":
        root.accounts.allow("default", key.access_key_id, **{grant: True})
    http = as_key(cluster, key)
    expected = MATRIX[grant]
    reads = [
        http.get(f"matrix/{grant}"),
        http.head(f"matrix/{grant}"),
        http.request("GET", "/?prefix=matrix/"),
    ]
    assert [r.status for r in reads] == [expected["read"]] * 3
    write = http.put(f"matrix/{grant}-new", b"written")
    assert write.status == expected["write"]
    deleted = http.delete(f"matrix/{grant}")
    assert deleted.status == (204 if expected["write"] == 201 else 403)
    for response in [*reads, write, deleted]:
        if response.status == 403 and response.body:
            assert error_code(response) == "access_denied"
    assert http.request("GET", "/_/nodes").status == 403, "the /_/ routes need an admin key"
    assert http.request("GET", "/_/admin/keys").status == 403
    root.delete(f"matrix/{grant}")
    root.delete(f"matrix/{grant}-new")


def test_an_admin_key_may_do_everything(cluster: LocalCluster) -> None:
    admin = as_key(cluster, created_key(gateway_client(cluster.url), "operator", is_admin=True))
    assert admin.put("matrix/admin", b"x").status == 201
    assert admin.get("matrix/admin").status == 200
    assert admin.delete("matrix/admin").status == 204
    assert admin.request("GET", "/_/nodes").status == 200
    other = admin.accounts.create_key("made-by-an-admin")
    assert other["access_key_id"] in {k["access_key_id"] for k in admin.accounts.list_keys()}


def test_a_disabled_key_is_refused_at_once_on_its_gateway(cluster: LocalCluster) -> None:
    root = gateway_client(cluster.url)
    key = created_key(root, "soon-disabled")
    root.accounts.allow("default", key.access_key_id, read=True)
    http = as_key(cluster, key)
    assert http.request("GET", "/").status == 200
    root.accounts.disable_key(key.access_key_id)
    assert error_code(http.request("GET", "/")) == "invalid_access_key_id"


# -- curl and 100 Continue -------------------------------------------------------------------


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", *args], capture_output=True, timeout=60, check=False
    )


def sigv4(credentials: Credentials) -> list[str]:
    user = f"{credentials.access_key_id}:{credentials.secret_access_key}"
    return ["--aws-sigv4", "aws:amz:us-east-1:s3", "--user", user]


def test_curl_signs_get_put_and_delete(cluster: LocalCluster, tmp_path: Path) -> None:
    data = random_bytes(2 * MIB + 5)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    url = f"{cluster.url}/curl/a%20file"
    put = curl(*sigv4(TEST_ROOT), "-T", str(source), "-w", "%{http_code}", url)
    assert put.stdout.endswith(b"201"), put
    assert json.loads(put.stdout[:-3])["md5"] == md5_hex(data)
    got = curl(*sigv4(TEST_ROOT), url)
    assert got.returncode == 0 and got.stdout == data
    wrong = Credentials(TEST_ROOT.access_key_id, "a-wrong-secret-for-curl")
    refused = curl(*sigv4(wrong), "-T", str(source), "-w", "%{http_code}", url + "-wrong")
    assert refused.stdout.endswith(b"403"), refused
    deleted = curl(*sigv4(TEST_ROOT), "-X", "DELETE", "-w", "%{http_code}", url)
    assert deleted.stdout == b"204"
    assert curl(*sigv4(TEST_ROOT), "-w", "%{http_code}", "-o", os.devnull, url).stdout == b"404"


def read_head(sock: socket.socket) -> bytes:
    """Bytes up to the first blank line (one answer's head, or a 100 Continue)."""
    received = b""
    while b"\r\n\r\n" not in received:
        piece = sock.recv(65536)
        if not piece:
            break
        received += piece
    return received


@pytest.fixture
def connection(cluster: LocalCluster) -> Iterator[socket.socket]:
    with socket.create_connection((cluster.host, cluster.http_port), timeout=10) as sock:
        yield sock


def test_a_refused_upload_is_refused_before_its_body(
    cluster: LocalCluster, connection: socket.socket
) -> None:
    """The client waits for 100 Continue and gets the 403 instead; it never sends a byte."""
    head = (
        f"PUT /expect/refused HTTP/1.1\r\nHost: 127.0.0.1:{cluster.http_port}\r\n"
        f"Content-Length: {64 * MIB}\r\nExpect: 100-continue\r\n\r\n"
    )
    connection.sendall(head.encode())
    answer = read_head(connection)
    assert answer.startswith(b"HTTP/1.1 403"), answer
    assert b"100 Continue" not in answer


def test_an_admitted_upload_gets_100_continue(
    cluster: LocalCluster, connection: socket.socket
) -> None:
    body = random_bytes(1000)
    headers = {"Content-Length": str(len(body)), "Expect": "100-continue"}
    connection.sendall(signed_head("PUT", "/expect/admitted", cluster.http_port, headers))
    assert read_head(connection).startswith(b"HTTP/1.1 100 Continue"), "no go-ahead"
    connection.sendall(body)
    assert read_head(connection).startswith(b"HTTP/1.1 201"), "not stored"
    assert gateway_client(cluster.url).get("expect/admitted").body == body


# -- secrets stay secret ---------------------------------------------------------------------


def test_secrets_never_show_in_the_log_the_routes_or_the_database(
    cluster: LocalCluster,
) -> None:
    root = gateway_client(cluster.url)
    key = created_key(root, "watched")
    root.accounts.allow("default", key.access_key_id, read=True, write=True)
    assert as_key(cluster, key).put("secret/check", b"x").status == 201
    secrets = [key.secret_access_key.encode(), TEST_ROOT.secret_access_key.encode()]
    shown = [root.request("GET", path).body for path in SYSTEM_ROUTES]
    shown += [
        root.request("GET", f"/_/admin/keys/{key.access_key_id}").body,
        root.request("GET", "/_/admin/buckets/default").body,
        root.request("POST", f"/_/admin/keys/{key.access_key_id}/disable").body,
    ]
    log = cluster.gateway_log_path().read_bytes()
    assert TEST_ROOT.access_key_id.encode() in log, "the root key's id is logged"
    database = cluster.data_dir / "gateway" / "metadata.db"
    stored = b"".join(p.read_bytes() for p in database.parent.glob("metadata.db*"))
    assert key.access_key_id.encode() in stored
    for secret in secrets:
        assert all(secret not in body for body in shown)
        assert secret not in log
        assert secret not in stored
    root.delete("secret/check")


# -- the master key --------------------------------------------------------------------------


def test_a_gateway_given_another_master_key_refuses_to_start(cluster: LocalCluster) -> None:
    """Another master key file for the same database: the gateway says so and exits."""
    other = cluster.data_dir / "other-secrets.key"
    other.write_bytes(os.urandom(32))
    other.chmod(0o600)
    database = f"sqlite:///{cluster.data_dir / 'gateway' / 'metadata.db'}"
    started = subprocess.run(
        [
            sys.executable, "-m", "diststorage", "gateway",
            "--listen", "127.0.0.1:0", "--grpc-listen", "127.0.0.1:0",
            "--data", str(cluster.data_dir / "refused-gateway"),
            "--metadata", database, "--secrets-key-file", str(other),
            "--cluster-dir", str(cluster.cluster_dir),
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert started.returncode != 0
    said = " ".join((started.stderr + started.stdout).split())
    assert "is not the master key this metadata database's access-key secrets" in said


# -- diststorage up --------------------------------------------------------------------------


def test_up_prints_the_root_key_it_generated_and_anonymous_opens_the_object_api(
    tmp_path: Path,
) -> None:
    port = free_port()
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DISTSTORAGE_ROOT")}
    argv = [sys.executable, "-m", "diststorage", "up", "--nodes", "1", "--redundancy",
            "replicate:1", "--port", str(port), "--data", str(data), "--anonymous"]  # fmt: skip
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True
    )
    try:
        assert process.stdout is not None
        printed = ""
        while "root secret key" not in printed:
            line = process.stdout.readline()
            assert line, f"up ended early: {printed}"
            printed += line
        root = read_credentials_file(data / "root-credentials")
        assert root.access_key_id in printed and root.secret_access_key in printed
        assert f"dashboard:        http://127.0.0.1:{port}/_/ui" in printed
        anonymous = gateway_client(f"http://127.0.0.1:{port}", None)
        assert anonymous.put("up/open", b"x").status == 201
        assert anonymous.request("GET", "/_/nodes").status == 403, "the /_/ routes stay closed"
        assert (
            gateway_client(f"http://127.0.0.1:{port}", root).request("GET", "/_/nodes").status
            == 200
        )
        log = (data / "logs" / "gateway.log").read_text()
        assert "--anonymous" in log and root.secret_access_key not in log
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
