"""The client's errors, one tree::

    ClientError          the gateway answered an HTTP error status: ``status``, the JSON body's
    │                    ``error`` code and ``message`` (``http_error`` and the reason phrase
    │                    when the body is not the gateway's JSON error)
    └── TransportError   no answer at all: the connection could not be made or broke, or a
                         deadline passed; ``status`` is 0 and ``code`` is ``unreachable``

Only the typed methods of ``Client`` raise ``ClientError`` for an error status; the methods that
return a ``Response`` hand every status back as it came and raise only ``TransportError``.
"""

from __future__ import annotations

UNREACHABLE = "unreachable"


class ClientError(Exception):
    """The gateway answered with an error status (or, as ``TransportError``, not at all)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class TransportError(ClientError):
    """No HTTP answer: connecting failed, the connection broke, or a deadline passed.

    Unlike its parent it says nothing of the request's fate: an upload cut off here may or may
    not have been committed.
    """

    def __init__(self, message: str) -> None:
        super().__init__(0, UNREACHABLE, message)
