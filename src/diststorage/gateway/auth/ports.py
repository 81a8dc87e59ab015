"""What the front ends (the native API, S3, admin routes) ask of authentication.

A front end turns each request into a ``SignedRequest`` (``diststorage.s3auth.sigv4``), asks
``Authenticator.authenticate`` who sent it, and asks ``authorize`` before it touches a bucket.
The composition root builds the one implementation and hands it to every front end.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from diststorage.s3auth.sigv4 import SignedRequest, Verified


class Access(StrEnum):
    """The one class of right an operation needs on its bucket (S3.md §2): reads and listings
    need READ, deleting a bucket or changing its configuration OWNER, everything else WRITE."""

    READ = "read"
    WRITE = "write"
    OWNER = "owner"


@dataclass(frozen=True, slots=True)
class Principal:
    """The holder of a verified access key."""

    access_key_id: str
    name: str
    # The root key and keys created with admin rights: every bucket, and the /_/ admin routes.
    is_admin: bool
    can_create_buckets: bool


@dataclass(frozen=True, slots=True)
class Caller:
    """A request's verified sender, and how its body must be verified."""

    principal: Principal
    verified: Verified


class Authenticator(Protocol):
    async def authenticate(self, request: SignedRequest) -> Caller | None:
        """The request's sender once its signature checks out; None for a request that
        carries no authentication at all (whether that is allowed is the front end's call).

        Raises an AuthError (InvalidAccessKeyId for an unknown or disabled key,
        SignatureDoesNotMatch, RequestTimeTooSkewed, ...) for one that fails.
        """
        ...

    async def authorize(self, principal: Principal, bucket: str, access: Access) -> None:
        """Returns when the principal holds ``access`` on the bucket (admins hold every
        right); raises AccessDenied otherwise, and NoSuchBucket for a bucket that does not
        exist only when the principal could see it (else AccessDenied, so that names do not
        leak)."""
        ...
