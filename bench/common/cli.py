"""What every suite's command line shares: progress lines, the options each suite takes, the
pick of a profile, and the exit status.

Progress goes to stderr (``say``); the tables and the JSON document go to stdout, so that
``> out.txt`` keeps the figures only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_MISSING = 2  # curl, disk space, PostgreSQL or repair is missing
EXIT_INTERRUPTED = 130
# The suites drive the native object API unsigned, as they did before authentication: their
# clients (curl, aiohttp) would otherwise each need the root key. The /_/ routes they read
# still need it, and are signed (diststorage.testing.sigv4_middleware).
OPEN_GATEWAY_ARGS = ["--anonymous"]


def say(message: str) -> None:
    """One progress line on stderr, stamped with the wall-clock time."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def new_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser described by the first paragraph of the suite's docstring."""
    return argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)


def add_run_options(
    parser: argparse.ArgumentParser, quick_help: str, tmp_help: str, logs_out: bool = True
) -> None:
    """``--quick``, ``--json-out``, ``--tmp-dir`` and (with ``logs_out``) ``--logs-out``."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    parser.add_argument("--tmp-dir", type=Path, help=tmp_help)
    if logs_out:
        parser.add_argument(
            "--logs-out", type=Path, help="copy the cluster logs here before cleanup"
        )


P = TypeVar("P", bound="DataclassInstance")


def pick_profile(quick: bool, full_profile: P, quick_profile: P, **overrides: Any) -> P:
    """The quick or the full profile (frozen dataclasses), with each override that is not
    None put in (an option the user gave)."""
    profile = quick_profile if quick else full_profile
    given = {field: value for field, value in overrides.items() if value is not None}
    return dataclasses.replace(profile, **given) if given else profile


def write_json(path: Path | None, document: dict[str, Any]) -> None:
    """Writes ``document`` to ``path`` (none: nothing), indented, with a final newline."""
    if path is not None:
        path.write_text(json.dumps(document, indent=2) + "\n")


def exit_status(interrupted: bool, failed: bool) -> int:
    """130 if the run was interrupted, else 1 if anything came back wrong, else 0."""
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_FAILED if failed else EXIT_OK
