"""Real S3 clients against a real cluster: aws-cli (v1), s3cmd, rclone and minio-py, each with
its stock behaviour, over plain HTTP.

Each client creates its own bucket, uploads a file above its multipart threshold, downloads it
(md5 checked, and the ETag checked as S3's md5-of-part-md5s for that client's part size), lists
with a delimiter, copies server-side and deletes; aws-cli also syncs a folder and round-trips a
gzip Content-Encoding byte-exact (S3.md pitfall 1). The root boto3 client is the oracle of what
the server holds. Every tool gets its configuration in the test's own folder (never the user's
home) and its secret through a file or the environment, never argv.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import MIB, REGION, TEST_ROOT, BigFile, md5_hex, random_bytes, write_random_file
from minio import Minio
from minio.commonconfig import CopySource

from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster

BIG_BYTES = 100 * MIB + 12_345  # a short last part too
AWS_PART = 8 * MIB  # aws-cli's (s3transfer's) default multipart_chunksize
S3CMD_PART = 15 * MIB  # s3cmd's default multipart_chunk_size_mb
RCLONE_PART = 8 * MIB  # set below: rclone's default upload_cutoff (200 MiB) is above BIG_BYTES
MINIO_PART = 5 * MIB  # minio-py's part size for 100 MiB (its 5 MiB minimum)
CLI_TIMEOUT_S = 300.0
VENV_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"
FOLDER_KEYS = ("folder-a/one.txt", "folder-a/two.txt", "folder-b/deep/three.txt", "top.txt")


# -- shared ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigFile]:
    folder = tmp_path_factory.mktemp("big")
    made = write_random_file(folder / "big.bin", BIG_BYTES)
    yield made
    shutil.rmtree(folder, ignore_errors=True)


def multipart_etag(path: Path, part_bytes: int) -> str:
    """S3's ETag of a multipart upload of ``path`` in parts of ``part_bytes``: the md5 of the
    parts' binary md5s, then ``-`` and the part count."""
    digests = b""
    count = 0
    with path.open("rb") as source:
        while part := source.read(part_bytes):
            digests += hashlib.md5(part, usedforsecurity=False).digest()
            count += 1
    return f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{count}"'


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as source:
        while piece := source.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


def run(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> str:
    """Runs a client; its output, or a failure that shows everything it said."""
    done = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"{argv[0]} exited {done.returncode}\nstdout:\n{done.stdout[-4000:]}"
        f"\nstderr:\n{done.stderr[-4000:]}"
    )
    return done.stdout


def clean_env(home: Path) -> dict[str, str]:
    """This process's environment without AWS, s3cmd or rclone settings, with HOME in the
    test's folder, so that no tool reads the user's configuration."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AWS_", "RCLONE_", "S3CMD", "DISTSTORAGE_ROOT"))
    }
    home.mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    return env


def put_folder_keys(s3: Any, bucket: str) -> None:
    for key in FOLDER_KEYS:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())


def assert_stored(s3: Any, bucket: str, key: str, size: int, etag: str) -> None:
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == size
    assert head["ETag"] == etag


def assert_gone(s3: Any, bucket: str, key: str) -> None:
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=key)
    assert [o["Key"] for o in listed.get("Contents", [])] == []


# -- aws-cli -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aws(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``aws(*args)`` runs aws-cli v1 against the cluster and answers its stdout."""
    folder = tmp_path_factory.mktemp("aws")
    config = folder / "config"
    config.write_text(
        f"[default]\nregion = {REGION}\noutput = json\ns3 =\n    addressing_style = path\n"
    )
    credentials = folder / "credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {TEST_ROOT.access_key_id}\n"
        f"aws_secret_access_key = {TEST_ROOT.secret_access_key}\n"
    )
    env = clean_env(folder / "home")
    env["AWS_CONFIG_FILE"] = str(config)
    env["AWS_SHARED_CREDENTIALS_FILE"] = str(credentials)

    def aws_cli(*args: str) -> str:
        argv = [str(VENV_BIN / "aws"), "--endpoint-url", cluster.s3_url, *args]
        return run(argv, env, folder)

    return aws_cli


def test_aws_cli_uploads_and_downloads_a_multipart_file(
    aws: Any, s3: Any, big: BigFile, tmp_path: Path
) -> None:
    aws("s3", "mb", "s3://aws-cli")
    aws("s3", "cp", str(big.path), "s3://aws-cli/big.bin")
    assert_stored(s3, "aws-cli", "big.bin", big.size, multipart_etag(big.path, AWS_PART))
    target = tmp_path / "down.bin"
    aws("s3", "cp", "s3://aws-cli/big.bin", str(target))
    assert target.stat().st_size == big.size
    assert file_md5(target) == big.md5


def test_aws_cli_lists_folders_copies_and_deletes(aws: Any, s3: Any) -> None:
    s3.create_bucket(Bucket="aws-cli-list")
    put_folder_keys(s3, "aws-cli-list")
    listed = json.loads(
        aws("s3api", "list-objects-v2", "--bucket", "aws-cli-list", "--delimiter", "/")
    )
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["folder-a/", "folder-b/"]
    assert [o["Key"] for o in listed["Contents"]] == ["top.txt"]
    shown = aws("s3", "ls", "s3://aws-cli-list/")
    assert "PRE folder-a/" in shown and "PRE folder-b/" in shown and "top.txt" in shown
    inner = json.loads(
        aws(
            "s3api", "list-objects", "--bucket", "aws-cli-list",
            "--prefix", "folder-a/", "--delimiter", "/",
        )
    )  # fmt: skip
    assert [o["Key"] for o in inner["Contents"]] == ["folder-a/one.txt", "folder-a/two.txt"]
    aws("s3", "cp", "s3://aws-cli-list/folder-a/one.txt", "s3://aws-cli-list/copied/one.txt")
    copied = s3.get_object(Bucket="aws-cli-list", Key="copied/one.txt")
    assert copied["Body"].read() == b"folder-a/one.txt"
    aws("s3", "rm", "s3://aws-cli-list/copied/one.txt")
    assert_gone(s3, "aws-cli-list", "copied/")
    aws("s3", "rm", "--recursive", "s3://aws-cli-list/")
    aws("s3", "rb", "s3://aws-cli-list")
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert "aws-cli-list" not in names


def make_tree(root: Path) -> dict[str, bytes]:
    """A small folder tree of random files (one above aws-cli's multipart threshold)."""
    files = {
        "a.txt": b"alpha\n",
        "empty.bin": b"",
        "nested/b.bin": random_bytes(300_000),
        "nested/deeper/c.bin": random_bytes(9 * MIB + 3),
        "with space/d e.txt": b"spaces in the key\n",
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_aws_cli_syncs_a_folder_up_and_down(aws: Any, s3: Any, tmp_path: Path) -> None:
    s3.create_bucket(Bucket="aws-cli-sync")
    source = tmp_path / "source"
    files = make_tree(source)
    aws("s3", "sync", str(source), "s3://aws-cli-sync/tree/")
    listed = s3.list_objects_v2(Bucket="aws-cli-sync", Prefix="tree/")
    stored = {o["Key"].removeprefix("tree/"): o["Size"] for o in listed["Contents"]}
    assert stored == {name: len(data) for name, data in files.items()}
    again = aws("s3", "sync", str(source), "s3://aws-cli-sync/tree/")
    assert "upload:" not in again, f"a second sync uploaded again: {again}"
    (source / "a.txt").write_bytes(b"alpha, changed\n")
    changed = aws("s3", "sync", str(source), "s3://aws-cli-sync/tree/")
    assert changed.count("upload:") == 1, changed
    target = tmp_path / "target"
    aws("s3", "sync", "s3://aws-cli-sync/tree/", str(target))
    files["a.txt"] = b"alpha, changed\n"
    for name, data in files.items():
        assert (target / name).read_bytes() == data, name


def test_aws_cli_gzip_content_encoding_round_trips_byte_exact(
    aws: Any, s3: Any, tmp_path: Path
) -> None:
    """aiohttp would inflate a gzip request body unless told not to (S3.md pitfall 1)."""
    s3.create_bucket(Bucket="aws-cli-gzip")
    packed = gzip.compress(b"compressible text, " * 5000)
    source = tmp_path / "page.html.gz"
    source.write_bytes(packed)
    aws(
        "s3", "cp", str(source), "s3://aws-cli-gzip/page.html",
        "--content-encoding", "gzip", "--content-type", "text/html",
    )  # fmt: skip
    head = s3.head_object(Bucket="aws-cli-gzip", Key="page.html")
    assert head["ContentLength"] == len(packed)
    assert head["ETag"] == f'"{md5_hex(packed)}"'
    assert head["ContentEncoding"] == "gzip"
    assert head["ContentType"] == "text/html"
    target = tmp_path / "back.gz"
    aws("s3", "cp", "s3://aws-cli-gzip/page.html", str(target))
    assert target.read_bytes() == packed


# -- s3cmd -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3cmd(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``s3cmd(*args)`` runs s3cmd path-style, SigV4, over http against the cluster."""
    folder = tmp_path_factory.mktemp("s3cmd")
    host = cluster.s3_url.removeprefix("http://")
    config = folder / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {TEST_ROOT.access_key_id}\n"
        f"secret_key = {TEST_ROOT.secret_access_key}\n"
        f"host_base = {host}\nhost_bucket = {host}\nbucket_location = {REGION}\n"
        "use_https = False\nsignature_v2 = False\n"
        f"multipart_chunk_size_mb = {S3CMD_PART // MIB}\n"
    )
    env = clean_env(folder / "home")

    def s3cmd_cli(*args: str) -> str:
        argv = [
            str(VENV_BIN / "s3cmd"), "-c", str(config), f"--host={host}",
            f"--host-bucket={host}", "--no-ssl", *args,
        ]  # fmt: skip
        return run(argv, env, folder)

    return s3cmd_cli


def test_s3cmd_puts_and_gets_a_multipart_file(
    s3cmd: Any, s3: Any, big: BigFile, tmp_path: Path
) -> None:
    s3cmd("mb", "s3://s3cmd-bucket")
    s3cmd("put", str(big.path), "s3://s3cmd-bucket/big.bin")
    assert_stored(s3, "s3cmd-bucket", "big.bin", big.size, multipart_etag(big.path, S3CMD_PART))
    target = tmp_path / "down.bin"
    s3cmd("get", "s3://s3cmd-bucket/big.bin", str(target))
    assert file_md5(target) == big.md5


def test_s3cmd_lists_folders_copies_and_deletes(s3cmd: Any, s3: Any) -> None:
    s3.create_bucket(Bucket="s3cmd-list")
    put_folder_keys(s3, "s3cmd-list")
    lines = s3cmd("ls", "s3://s3cmd-list/").splitlines()
    folders = sorted(line.split()[-1] for line in lines if line.split()[0] == "DIR")
    assert folders == ["s3://s3cmd-list/folder-a/", "s3://s3cmd-list/folder-b/"]
    objects = [line.split()[-1] for line in lines if line.split()[0] != "DIR"]
    assert objects == ["s3://s3cmd-list/top.txt"]
    inner = s3cmd("ls", "s3://s3cmd-list/folder-b/").split()
    assert "s3://s3cmd-list/folder-b/deep/" in inner
    s3cmd("cp", "s3://s3cmd-list/top.txt", "s3://s3cmd-list/copied.txt")
    assert s3.get_object(Bucket="s3cmd-list", Key="copied.txt")["Body"].read() == b"top.txt"
    s3cmd("del", "s3://s3cmd-list/copied.txt")
    assert_gone(s3, "s3cmd-list", "copied.txt")


def test_s3cmd_copies_the_multipart_file_server_side(s3cmd: Any, s3: Any, big: BigFile) -> None:
    s3cmd("cp", "s3://s3cmd-bucket/big.bin", "s3://s3cmd-bucket/copy.bin")
    head = s3.head_object(Bucket="s3cmd-bucket", Key="copy.bin")
    assert head["ContentLength"] == big.size
    tail = s3.get_object(Bucket="s3cmd-bucket", Key="copy.bin", Range="bytes=-1000")
    with big.path.open("rb") as source:
        source.seek(-1000, os.SEEK_END)
        assert tail["Body"].read() == source.read()
    s3cmd("del", "s3://s3cmd-bucket/copy.bin", "s3://s3cmd-bucket/big.bin")
    assert_gone(s3, "s3cmd-bucket", "")


# -- rclone ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rclone(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``rclone(*args)`` runs rclone against the cluster as remote ``ds:``; the secret comes
    from the environment, the rest from a config file in the test's folder. No retries: a
    failed request fails the test at once instead of being tried again for minutes."""
    if shutil.which("rclone") is None:
        pytest.fail("rclone is not installed (apt-get install rclone)")
    folder = tmp_path_factory.mktemp("rclone")
    config = folder / "rclone.conf"
    config.write_text(
        "[ds]\ntype = s3\nprovider = Other\n"
        f"access_key_id = {TEST_ROOT.access_key_id}\n"
        f"endpoint = {cluster.s3_url}\nregion = {REGION}\nforce_path_style = true\n"
    )
    env = clean_env(folder / "home")
    env["RCLONE_CONFIG_DS_SECRET_ACCESS_KEY"] = TEST_ROOT.secret_access_key

    def rclone_cli(*args: str) -> str:
        argv = [
            "rclone", "--config", str(config), "--s3-upload-cutoff", f"{RCLONE_PART // MIB}M",
            "--s3-chunk-size", f"{RCLONE_PART // MIB}M", "--retries", "1",
            "--low-level-retries", "1", *args,
        ]  # fmt: skip
        return run(argv, env, folder)

    return rclone_cli


def test_rclone_copies_checks_and_downloads_a_multipart_file(
    rclone: Any, s3: Any, big: BigFile, tmp_path: Path
) -> None:
    rclone("mkdir", "ds:rclone-bucket")
    rclone("copy", str(big.path.parent), "ds:rclone-bucket/up")
    assert_stored(
        s3, "rclone-bucket", "up/big.bin", big.size, multipart_etag(big.path, RCLONE_PART)
    )
    rclone("check", str(big.path.parent), "ds:rclone-bucket/up")
    rclone("check", "--download", str(big.path.parent), "ds:rclone-bucket/up")
    target = tmp_path / "down"
    rclone("copy", "ds:rclone-bucket/up", str(target))
    assert file_md5(target / "big.bin") == big.md5


def test_rclone_lists_folders_copies_server_side_and_deletes(
    rclone: Any, s3: Any, big: BigFile
) -> None:
    put_folder_keys(s3, "rclone-bucket")
    top = sorted(rclone("lsf", "ds:rclone-bucket").splitlines())
    assert top == ["folder-a/", "folder-b/", "top.txt", "up/"]
    assert sorted(rclone("lsf", "ds:rclone-bucket/folder-b").splitlines()) == ["deep/"]
    rclone("copyto", "ds:rclone-bucket/up/big.bin", "ds:rclone-bucket/copy/big.bin")
    head = s3.head_object(Bucket="rclone-bucket", Key="copy/big.bin")
    assert head["ContentLength"] == big.size
    rclone("check", str(big.path.parent), "ds:rclone-bucket/copy")
    rclone("deletefile", "ds:rclone-bucket/copy/big.bin")
    assert_gone(s3, "rclone-bucket", "copy/")
    rclone("purge", "ds:rclone-bucket")
    assert "rclone-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


# -- minio-py ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minio(cluster: LocalCluster) -> Minio:
    return Minio(
        cluster.s3_url.removeprefix("http://"),
        access_key=TEST_ROOT.access_key_id,
        secret_key=TEST_ROOT.secret_access_key,
        secure=False,
        region=REGION,
    )


def test_minio_uploads_and_downloads_a_multipart_file(
    minio: Minio, s3: Any, big: BigFile, tmp_path: Path
) -> None:
    minio.make_bucket("minio-bucket")
    assert minio.bucket_exists("minio-bucket")
    written = minio.fput_object("minio-bucket", "big.bin", str(big.path))
    expected = multipart_etag(big.path, MINIO_PART)
    assert written.etag == expected.strip('"')
    assert_stored(s3, "minio-bucket", "big.bin", big.size, expected)
    target = tmp_path / "down.bin"
    minio.fget_object("minio-bucket", "big.bin", str(target))
    assert file_md5(target) == big.md5


def test_minio_lists_folders_copies_and_deletes(minio: Minio, s3: Any, big: BigFile) -> None:
    put_folder_keys(s3, "minio-bucket")
    listed = list(minio.list_objects("minio-bucket"))
    assert [o.object_name for o in listed if o.is_dir] == ["folder-a/", "folder-b/"]
    assert [o.object_name for o in listed if not o.is_dir] == ["big.bin", "top.txt"]
    nested = list(minio.list_objects("minio-bucket", prefix="folder-b/"))
    assert [(o.object_name, o.is_dir) for o in nested] == [("folder-b/deep/", True)]
    everything = [o.object_name for o in minio.list_objects("minio-bucket", recursive=True)]
    assert everything == sorted(["big.bin", *FOLDER_KEYS])
    minio.copy_object("minio-bucket", "copy.bin", CopySource("minio-bucket", "big.bin"))
    stat = minio.stat_object("minio-bucket", "copy.bin")
    assert stat.size == big.size
    minio.remove_object("minio-bucket", "copy.bin")
    minio.remove_object("minio-bucket", "big.bin")
    assert_gone(s3, "minio-bucket", "copy.bin")
    assert_gone(s3, "minio-bucket", "big.bin")
