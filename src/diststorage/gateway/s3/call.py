"""One admitted S3 request, as its handler gets it: the operation, the bucket and key, the
verified caller and the gateway's services."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDictProxy, MultiMapping

from diststorage.core.settings import GatewaySettings
from diststorage.gateway.auth.ports import Principal
from diststorage.gateway.s3.routing import Op
from diststorage.gateway.services import Services


@dataclass(frozen=True, slots=True)
class S3Call:
    request: web.Request
    services: Services
    op: Op
    # "" for ListBuckets; the key "" for bucket operations.
    bucket: str
    key: str
    principal: Principal
    request_id: str

    @property
    def settings(self) -> GatewaySettings:
        return self.services.settings

    @property
    def query(self) -> MultiMapping[str]:
        return self.request.query

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers


S3Handler = Callable[[S3Call], Awaitable[web.StreamResponse]]
S3Handlers = Mapping[Op, S3Handler]

S3_CALL: web.RequestKey[S3Call] = web.RequestKey("s3_call", S3Call)
