"""Access keys as their holders see them: an id and a secret, new ones, and credentials files.

Ids are 20 characters (``DS`` and 18 of base32) and secrets 40, the lengths of AWS's own, so
that tools which check the shape of a key accept ours. A credentials file is either JSON
(``{"access_key_id": …, "secret_access_key": …}``, what the gateway and ``diststorage up``
write) or an AWS-style INI file (``aws_access_key_id`` / ``aws_secret_access_key`` in its first
section); it is written with mode 0600.
"""

from __future__ import annotations

import base64
import configparser
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from diststorage.core.durable import replace_durably
from diststorage.core.errors import InvalidRequest
from diststorage.core.filemodes import make_private_dir
from diststorage.core.settings import ROOT_ACCESS_KEY_ENV, ROOT_SECRET_KEY_ENV

KEY_ID_PREFIX = "DS"
KEY_ID_CHARS = 20
SECRET_CHARS = 40
# What a key id given from outside (the root key from the environment) may look like: it goes
# into the credential scope of a signature, whose parts are separated by "/".
_KEY_ID = re.compile(r"^[A-Za-z0-9._-]{3,128}$")
MIN_SECRET_CHARS = 8


@dataclass(frozen=True, slots=True)
class Credentials:
    """An access key id and its secret. The secret never shows in a repr."""

    access_key_id: str
    secret_access_key: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _KEY_ID.match(self.access_key_id):
            raise InvalidRequest(
                "an access key id is 3 to 128 letters, digits, dots, dashes or underscores"
            )
        if len(self.secret_access_key) < MIN_SECRET_CHARS or any(
            c.isspace() for c in self.secret_access_key
        ):
            raise InvalidRequest(
                f"a secret access key is at least {MIN_SECRET_CHARS} characters, no spaces"
            )


def new_access_key_id() -> str:
    body = base64.b32encode(secrets.token_bytes(15)).decode()
    return KEY_ID_PREFIX + body[: KEY_ID_CHARS - len(KEY_ID_PREFIX)]


def new_secret() -> str:
    secret = secrets.token_urlsafe(30)
    assert len(secret) == SECRET_CHARS
    return secret


def new_credentials() -> Credentials:
    return Credentials(new_access_key_id(), new_secret())


def read_credentials_file(path: Path) -> Credentials:
    """The credentials in a JSON or INI file; raises InvalidRequest naming the file when it
    holds neither, and OSError when it cannot be read."""
    text = path.read_text()
    try:
        parsed = json.loads(text)
    except ValueError:
        return _from_ini(path, text)
    if not isinstance(parsed, dict):
        raise InvalidRequest(f"{path} is JSON but not an object")
    try:
        return Credentials(str(parsed["access_key_id"]), str(parsed["secret_access_key"]))
    except KeyError as exc:
        raise InvalidRequest(f"{path} has no {exc.args[0]!r}") from exc


def _from_ini(path: Path, text: str) -> Credentials:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise InvalidRequest(f"{path} is neither JSON nor an INI credentials file") from exc
    for name in parser.sections():
        section = parser[name]
        if "aws_access_key_id" in section and "aws_secret_access_key" in section:
            return Credentials(section["aws_access_key_id"], section["aws_secret_access_key"])
    raise InvalidRequest(f"{path} has no section with aws_access_key_id and aws_secret_access_key")


def write_credentials_file(path: Path, credentials: Credentials) -> None:
    """Writes ``credentials`` as JSON, mode 0600, durably."""
    body = {
        "access_key_id": credentials.access_key_id,
        "secret_access_key": credentials.secret_access_key,
    }
    make_private_dir(path.parent)
    replace_durably(path, json.dumps(body, indent=2).encode() + b"\n", mode=0o600)


def root_environment(credentials: Credentials) -> dict[str, str]:
    """The variables that hand ``credentials`` to a gateway as its root key: a child gets them
    in its environment, which (unlike argv) other users of the machine cannot read."""
    return {
        ROOT_ACCESS_KEY_ENV: credentials.access_key_id,
        ROOT_SECRET_KEY_ENV: credentials.secret_access_key,
    }
