"""Who may do what on the S3 API: every request is signed (SigV4 in the header or the
query, SigV2 presigned) by an active key holding the right its operation needs on the bucket
(``routing.ACCESS``), judged before any 100 Continue (``http.admission``). There is no
anonymous S3 access.

CreateBucket needs the key's create-bucket flag (or an admin key); ListBuckets only a valid
key, and shows what it holds grants on. CopyObject and UploadPartCopy need READ on the source
too, which their handlers check once they know it.
"""

from __future__ import annotations

from aiohttp import web

from diststorage.core.errors import AccessDenied
from diststorage.gateway.http.access import request_id_of
from diststorage.gateway.http.admission import Admission, signed_request_of
from diststorage.gateway.http.callers import set_caller
from diststorage.gateway.s3.addressing import target_of
from diststorage.gateway.s3.call import S3_CALL, S3Call
from diststorage.gateway.s3.routing import ACCESS, Op, route
from diststorage.gateway.services import Services


class S3Guard(Admission):
    def __init__(self, services: Services) -> None:
        self._services = services

    async def judge(self, request: web.Request) -> None:
        services = self._services
        caller = await services.authenticator.authenticate(signed_request_of(request))
        if caller is None:
            raise AccessDenied("the S3 API takes signed requests only (SigV4)")
        target = target_of(request.host, request.raw_path, services.settings.s3_domain)
        op = route(request.method, target, request.query, "x-amz-copy-source" in request.headers)
        principal = caller.principal
        access = ACCESS[op]
        if op is Op.CREATE_BUCKET:
            if not (principal.can_create_buckets or principal.is_admin):
                raise AccessDenied("this key may not create buckets")
        elif access is not None:
            await services.authenticator.authorize(principal, target.bucket, access)
        set_caller(request, caller)
        request[S3_CALL] = S3Call(
            request,
            services,
            op,
            target.bucket,
            target.key,
            principal,
            request_id_of(request),
        )
