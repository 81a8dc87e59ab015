"""Pins each package's public names so a change to them is deliberate."""

import diststorage.client
import diststorage.erasure
import diststorage.meta
import diststorage.placement
import diststorage.s3auth


def test_exports() -> None:
    assert sorted(diststorage.erasure.__all__) == [
        "Block",
        "Codec",
        "ReedSolomonCodec",
        "ReplicaCodec",
        "SplitCodec",
        "codec_for",
    ]
    assert sorted(diststorage.placement.__all__) == ["Candidate", "rank_nodes", "share_out"]
    assert "MetadataStore" in diststorage.meta.__all__
    assert sorted(diststorage.client.__all__) == [
        "Body",
        "Client",
        "ClientError",
        "Credentials",
        "Progress",
        "Response",
        "StreamedGet",
        "StreamingResponse",
        "TransportError",
        "quote_key",
    ]
    assert sorted(diststorage.s3auth.__all__) == [
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
