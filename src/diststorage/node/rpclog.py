"""One log line per chunk call a node serves, stamped with the id of the client request it
serves (the gateway sends it as gRPC metadata ``x-request-id``), so that a node's lines join
the gateway's access line of the same request.

A request id from the metadata is taken only in the shape a gateway accepts
(``core.request_ids``); anything else is dropped, never logged: the node's log is no place for
what a peer chose to put there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from diststorage.core.logs import fields
from diststorage.core.request_ids import GRPC_METADATA_KEY, current_request_id, is_acceptable

log = logging.getLogger("diststorage.node.calls")

Context = grpc.aio.ServicerContext[Any, Any]


def request_id_in(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == GRPC_METADATA_KEY and isinstance(value, str) and is_acceptable(value):
            return value
    return None


@dataclass
class CallRecord:
    """What the servicer learns during the call, for its log line."""

    chunk_id: str
    size_bytes: int = 0


@contextlib.asynccontextmanager
async def served(context: Context, rpc: str, chunk_id: str = "") -> AsyncIterator[CallRecord]:
    """Runs one call under its request id and logs it when it ends: the call, its outcome
    (OK, or the status it was aborted with), the chunk, the bytes moved and how long it took.
    Enter it outside ``rpc_errors``, so that the outcome is the status the caller got."""
    token = current_request_id.set(request_id_in(context))
    record = CallRecord(chunk_id)
    started = time.perf_counter()
    outcome = "OK"
    try:
        yield record
    except grpc.aio.AbortError:
        code = context.code()
        outcome = code.name if isinstance(code, grpc.StatusCode) else "ABORTED"
        raise
    except (asyncio.CancelledError, GeneratorExit):
        outcome = "CANCELLED"  # the caller went away (or closed a stream it had read enough of)
        raise
    except Exception:
        outcome = "ERROR"
        raise
    finally:
        log_call(rpc, outcome, record, started)
        # A stream's generator may be finalized from another context than it started in.
        with contextlib.suppress(ValueError):
            current_request_id.reset(token)


def log_call(rpc: str, outcome: str, record: CallRecord, started: float, **more: str) -> None:
    """The call's one line: its outcome, chunk, bytes moved and time since ``started``
    (``time.perf_counter``), with ``more`` fields (the data link says ``link="data"``)."""
    log.info(
        "%s %s",
        rpc,
        outcome,
        extra=fields(
            {
                "rpc": rpc,
                **more,
                "code": outcome,
                "chunk_id": record.chunk_id,
                "bytes": record.size_bytes,
                "duration_s": round(time.perf_counter() - started, 6),
            }
        ),
    )
