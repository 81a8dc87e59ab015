"""The S3 API front end: its own listener (``--s3-listen``), path- and virtual-host-style
addressing, SigV4 on every request, S3 XML in and out. Each bucket is a namespace; the
native API's objects are the bucket ``default``."""

from diststorage.gateway.s3.app import build_s3_app

__all__ = ["build_s3_app"]
