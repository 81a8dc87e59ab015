"""The one ``Authenticator``: signatures checked with the key cache's secrets, rights with its
grants (S3.md §2, Garage's model).

Rights are three separate flags, as in Garage: an owner grant does not imply read or write
(CreateBucket gives all three). Admin keys, the root key among them, hold every right on
every bucket.

A bucket that does not exist is NoSuchBucket for a caller who could learn that anyway (an
admin, or a key that may create buckets: CreateBucket would tell it), and AccessDenied for
any other, so that bucket names do not leak to keys that can only use what they are given.
"""

from __future__ import annotations

import hashlib

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.core.errors import AccessDenied, InvalidAccessKeyId, NoSuchBucket
from diststorage.gateway.auth.keys import KeyCache
from diststorage.gateway.auth.ports import Access, Caller, Principal
from diststorage.meta import Grant
from diststorage.s3auth.sigv4 import SignedRequest, parse_authentication, verify


def holds(grant: Grant, access: Access) -> bool:
    match access:
        case Access.READ:
            return grant.read
        case Access.WRITE:
            return grant.write
        case Access.OWNER:
            return grant.owner


# What curl before 8.1 signs as the payload of every request (``--aws-sigv4``), with no
# x-amz-content-sha256 header: the empty body's sha256, even for an upload.
EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()


class KeyAuthenticator:
    """``absent_payload_hash``: see ``parse_authentication``. The S3 API leaves it None; the
    native API's authenticator (``for_native``) takes curl's signatures as they are."""

    def __init__(
        self,
        keys: KeyCache,
        region: str,
        clock: Clock = SYSTEM_CLOCK,
        absent_payload_hash: str | None = None,
    ) -> None:
        self._keys = keys
        self._region = region
        self._clock = clock
        self._absent_payload_hash = absent_payload_hash

    def for_native(self) -> KeyAuthenticator:
        """The same keys and grants, taking a header-signed request without
        x-amz-content-sha256 as signed over an empty payload, its body unsigned."""
        return KeyAuthenticator(self._keys, self._region, self._clock, EMPTY_PAYLOAD_SHA256)

    async def authenticate(self, request: SignedRequest) -> Caller | None:
        now = utc_now(self._clock)
        claim = parse_authentication(request, now, self._absent_payload_hash)
        if claim is None:
            return None
        known = await self._keys.key(claim.access_key_id)
        if known is None or not known.active:
            # A disabled key is refused as an unknown one: the caller learns nothing more.
            raise InvalidAccessKeyId("the access key id does not exist or is disabled")
        verified = verify(claim, known.secret, self._region, now)
        return Caller(known.principal, verified)

    async def authorize(self, principal: Principal, bucket: str, access: Access) -> None:
        try:
            grant = await self._keys.grant(principal.access_key_id, bucket)
        except NoSuchBucket:
            if principal.is_admin or principal.can_create_buckets:
                raise
            raise AccessDenied(f"{access.value} on {bucket!r} is not granted to this key") from None
        if principal.is_admin or holds(grant, access):
            return
        raise AccessDenied(f"{access.value} on {bucket!r} is not granted to this key")
