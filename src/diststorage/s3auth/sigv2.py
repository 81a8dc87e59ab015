"""SigV2 presigned URLs: ``?AWSAccessKeyId=…&Expires=…&Signature=…``.

Accepted, on purpose. Stock boto3 ``generate_presigned_url()`` still signs this way unless
the client is configured for ``s3v4``, and so does ``s3cmd signurl``; refusing them would break
the most common way to share an object. What is accepted is no weaker than a SigV4 presigned
URL with ``UNSIGNED-PAYLOAD``: the HMAC-SHA1 covers the method, Content-MD5, Content-Type,
every ``x-amz-*`` header and the resource with its sub-resources, and the URL must not have
expired. One bound SigV2 lacks is added: a URL good for more than 7 days from now (SigV4's
limit) is refused. SigV2 in the Authorization header is not accepted (see ``sigv4.py``).

The string to sign is botocore's (``HmacV1QueryAuth``)::

    METHOD \\n Content-MD5 \\n Content-Type \\n Expires \\n
    x-amz-name:value \\n …                  (sorted, values of repeated headers joined by ",")
    /bucket/key?sub-resource=value&…       (the raw path; sub-resources sorted, decoded)

botocore moves Content-Type, Content-MD5 and ``x-amz-*`` headers into the URL's query, so a
query parameter stands in for a header the request lacks. For a virtual-hosted request the
bucket comes from ``SignedRequest.bucket_in_host``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import unquote

from diststorage.core.errors import AuthorizationQueryParametersError, SignatureDoesNotMatch
from diststorage.s3auth.canonical import reencoded_uri, wire_bytes
from diststorage.s3auth.claims import AuthScheme, Claim, SignedRequest
from diststorage.s3auth.payload import PayloadMode
from diststorage.s3auth.query import QueryParams

# The query parameters that are part of the signed resource (botocore's list, AWS's).
SUB_RESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete",
        "inventory", "lifecycle", "location", "logging", "metrics", "notification",
        "object-lock", "partNumber", "policy", "replication", "requestPayment",
        "response-cache-control", "response-content-disposition",
        "response-content-encoding", "response-content-language", "response-content-type",
        "response-expires", "restore", "select", "select-type", "storageClass", "tagging",
        "torrent", "uploadId", "uploads", "versionId", "versioning", "versions", "website",
    }
)  # fmt: skip
_UNIX_TIME = re.compile(r"[0-9]{1,12}")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided."
    " Check your key and signing method."
)


def presigned_claim(
    request: SignedRequest, headers: Mapping[str, list[str]], params: QueryParams
) -> Claim:
    """Raises AuthorizationQueryParametersError for missing or malformed parameters."""
    failure = AuthorizationQueryParametersError
    key_id = params.single("AWSAccessKeyId", failure)
    # A "+" the client left unencoded was read as a space; base64 has no spaces.
    signature = params.single("Signature", failure).replace(" ", "+")
    expires = params.single("Expires", failure)
    if not key_id or not _UNIX_TIME.fullmatch(expires):
        raise failure("AWSAccessKeyId must be set and Expires be a Unix time")
    try:
        expires_at = datetime.fromtimestamp(int(expires), UTC)
    except (OverflowError, OSError, ValueError):
        raise failure(f"Expires {expires[:20]} is out of range") from None
    standard = _standard_lines(request.method, headers, params, expires)
    prefix = standard + _amz_lines(headers, params)
    paths = [request.raw_path or "/"]
    if reencoded_uri(request.raw_path) != paths[0]:
        paths.append(reencoded_uri(request.raw_path))
    bucket = f"/{request.bucket_in_host}" if request.bucket_in_host else ""
    resource_query = _sub_resources(request.raw_query)
    return Claim(
        access_key_id=key_id,
        scheme=AuthScheme.PRESIGNED_V2,
        signature=signature,
        payload=PayloadMode.UNSIGNED,
        content_sha256=None,
        canonical=tuple(f"{prefix}{bucket}{path}{resource_query}" for path in paths),
        expires_at=expires_at,
    )


def check_signature(claim: Claim, secret: str) -> None:
    """Raises SignatureDoesNotMatch unless one of the claim's strings to sign gives its
    signature under the secret."""
    for text in claim.canonical:
        digest = hmac.new(secret.encode("utf-8"), wire_bytes(text), hashlib.sha1).digest()
        if hmac.compare_digest(base64.b64encode(digest).decode("ascii"), claim.signature):
            return
    raise SignatureDoesNotMatch(_MISMATCH, claim.canonical[0], "", claim.access_key_id)


def _standard_lines(
    method: str, headers: Mapping[str, list[str]], params: QueryParams, expires: str
) -> str:
    lines = [method]
    for name in ("content-md5", "content-type"):
        values = headers.get(name)
        value = values[0] if values else params.first_named_like(name)
        lines.append((value or "").strip())
    lines.append(expires)
    return "\n".join(lines) + "\n"


def _amz_lines(headers: Mapping[str, list[str]], params: QueryParams) -> str:
    amz = {
        name: ",".join(v.strip() for v in values)
        for name, values in headers.items()
        if name.startswith("x-amz-")
    }
    for name in params.names():
        lowered = name.lower()
        if lowered.startswith("x-amz-") and lowered not in amz:
            amz[lowered] = ",".join(v.strip() for v in params.get_all(name))
    return "".join(f"{name}:{amz[name]}\n" for name in sorted(amz))


def _sub_resources(raw_query: str) -> str:
    """``?name=value&…`` of the signed sub-resources, sorted by name, values decoded."""
    found = []
    for part in raw_query.split("&"):
        name, equals, value = part.partition("=")
        if name in SUB_RESOURCES:
            found.append((name, f"{name}={unquote(value)}" if equals else name))
    found.sort(key=lambda item: item[0])
    return "?" + "&".join(text for _, text in found) if found else ""
