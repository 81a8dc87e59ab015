"""S3 request authentication: the SigV4 / SigV2-presign verifier, the aws-chunked decoder, the
S3 checksums, and a SigV4 signer for our own client. Pure: no I/O, no event loop, so that the
gateway and the client can both use it."""

from diststorage.s3auth.checksums import (
    Checksum,
    ChecksumAlgorithm,
    algorithm_from_header,
    combine_full_object,
    composite,
    decode_b64_checksum,
    header_name,
    new_checksum,
    parse_algorithm,
)
from diststorage.s3auth.chunked import AwsChunkedDecoder, TrailerResult, declared_trailer
from diststorage.s3auth.claims import AuthScheme, Claim, SignedRequest, Verified
from diststorage.s3auth.payload import ChunkSeed, PayloadMode, payload_mode
from diststorage.s3auth.signer import presign_url, sign_request
from diststorage.s3auth.sigv4 import parse_authentication, verify

__all__ = [
    "AuthScheme",
    "AwsChunkedDecoder",
    "Checksum",
    "ChecksumAlgorithm",
    "ChunkSeed",
    "Claim",
    "PayloadMode",
    "SignedRequest",
    "TrailerResult",
    "Verified",
    "algorithm_from_header",
    "combine_full_object",
    "composite",
    "declared_trailer",
    "decode_b64_checksum",
    "header_name",
    "new_checksum",
    "parse_algorithm",
    "parse_authentication",
    "payload_mode",
    "presign_url",
    "sign_request",
    "verify",
]
