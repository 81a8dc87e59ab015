"""The one place where diststorage errors become gRPC status codes on the node."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

import grpc

from diststorage.core.errors import (
    AlreadyExists,
    DataLoss,
    DiststorageError,
    InsufficientStorage,
    InvalidRequest,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)

# Most specific first: the first class the error is an instance of wins.
STATUS_OF_ERROR: tuple[tuple[type[DiststorageError], grpc.StatusCode], ...] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (InsufficientStorage, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (DataLoss, grpc.StatusCode.DATA_LOSS),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


def status_of(exc: DiststorageError) -> grpc.StatusCode:
    for error_class, code in STATUS_OF_ERROR:
        if isinstance(exc, error_class):
            return code
    return grpc.StatusCode.INTERNAL


@contextlib.asynccontextmanager
async def rpc_errors(
    context: grpc.aio.ServicerContext[object, object], rpc: str
) -> AsyncIterator[None]:
    """Ends the RPC with the status matching the error raised inside the block.

    Cancellation and grpc's own abort pass through untouched; anything that is not a
    DiststorageError is a bug, logged with its traceback and answered with INTERNAL.
    """
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except DiststorageError as exc:
        code = status_of(exc)
        if code is grpc.StatusCode.INTERNAL:
            log.error("%s: %s", rpc, exc.message)
        await context.abort(code, exc.message)
    except Exception:
        log.exception("%s failed unexpectedly", rpc)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error on the storage node")
