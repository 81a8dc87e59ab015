"""The large-transfer clients, one shape each: ``upload(source, key)`` and
``download(key, target)``, raising ``TransferFailed`` with what went wrong.

- native: ``diststorage.client`` (the project's own client, signing SigV4) on the native API;
- boto3: ``upload_file`` / ``download_file`` with s3transfer's defaults (8 MiB parts, 10
  threads), path-style, over http: each part's sha256 is signed, as boto3 does over http;
- aws-cli: ``aws s3 cp`` (v1, the same s3transfer defaults), configured by files in the run's
  folder and the secret in a credentials file, never argv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from bench.s3.profile import BUCKET
from diststorage.client import Client, ClientError, Credentials, TransportError

REGION = "us-east-1"
CLI_TIMEOUT_S = 1800.0
READ_TIMEOUT_S = 300.0


class TransferFailed(Exception):
    """A transfer that did not complete, with the client's own words."""


class LargeClient(Protocol):
    name: str

    def upload(self, source: Path, key: str) -> None: ...

    def download(self, key: str, target: Path) -> None: ...


def s3_client(url: str, credentials: Credentials, max_pool: int = 32) -> Any:
    """A boto3 S3 client for the cluster: path-style, us-east-1, no retries (a failure is
    reported, never hidden by a second attempt)."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_pool,
            read_timeout=READ_TIMEOUT_S,
        ),
    )


class NativeClient:
    name = "native"

    def __init__(self, url: str, credentials: Credentials) -> None:
        self._client = Client(url, read_timeout_s=READ_TIMEOUT_S, credentials=credentials)

    def upload(self, source: Path, key: str) -> None:
        try:
            self._client.put_file(source, key)
        except (ClientError, TransportError) as error:
            raise TransferFailed(f"native PUT: {error}") from error

    def download(self, key: str, target: Path) -> None:
        try:
            with target.open("wb") as sink:
                self._client.get_to(key, sink)
        except (ClientError, TransportError) as error:
            raise TransferFailed(f"native GET: {error}") from error


class Boto3Client:
    name = "boto3"

    def __init__(self, url: str, credentials: Credentials, transfer: TransferConfig) -> None:
        self._s3 = s3_client(url, credentials)
        self._transfer = transfer

    def upload(self, source: Path, key: str) -> None:
        try:
            self._s3.upload_file(str(source), BUCKET, key, Config=self._transfer)
        except Exception as error:  # boto3's errors share no base but Exception
            raise TransferFailed(f"boto3 upload_file: {error!r}") from error

    def head(self, key: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._s3.head_object(Bucket=BUCKET, Key=key)
        return answer

    def download(self, key: str, target: Path) -> None:
        try:
            self._s3.download_file(BUCKET, key, str(target), Config=self._transfer)
        except Exception as error:
            raise TransferFailed(f"boto3 download_file: {error!r}") from error


def aws_cli_path() -> Path | None:
    """aws-cli beside this Python (the project's venv), else on PATH."""
    beside = Path(sys.executable).parent / "aws"
    if beside.exists():
        return beside
    found = shutil.which("aws")
    return Path(found) if found else None


class AwsCliClient:
    name = "aws-cli"

    def __init__(self, executable: Path, url: str, credentials: Credentials, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / "config"
        config.write_text(f"[default]\nregion = {REGION}\ns3 =\n    addressing_style = path\n")
        secrets = folder / "credentials"
        secrets.write_text(
            f"[default]\naws_access_key_id = {credentials.access_key_id}\n"
            f"aws_secret_access_key = {credentials.secret_access_key}\n"
        )
        secrets.chmod(0o600)
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        self._env |= {
            "HOME": str(folder),
            "AWS_CONFIG_FILE": str(config),
            "AWS_SHARED_CREDENTIALS_FILE": str(secrets),
        }
        self._argv = [str(executable), "--endpoint-url", url, "--only-show-errors"]

    def _run(self, *args: str) -> None:
        done = subprocess.run(
            [*self._argv, *args],
            capture_output=True,
            text=True,
            env=self._env,
            timeout=CLI_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise TransferFailed(
                f"aws {' '.join(args[:2])} exited {done.returncode}: {done.stderr[-600:]}"
            )

    def upload(self, source: Path, key: str) -> None:
        self._run("s3", "cp", str(source), f"s3://{BUCKET}/{key}")

    def download(self, key: str, target: Path) -> None:
        self._run("s3", "cp", f"s3://{BUCKET}/{key}", str(target))
