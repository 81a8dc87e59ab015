"""Pins each package's public names so a change to them is deliberate."""

import diststorage.client
import diststorage.erasure
import diststorage.meta
import diststorage.placement


def test_exports() -> None:
    assert sorted(diststorage.erasure.__all__) == [
        "Codec",
        "ReedSolomonCodec",
        "ReplicaCodec",
        "SplitCodec",
        "codec_for",
    ]
    assert sorted(diststorage.placement.__all__) == ["Candidate", "rank_nodes"]
    assert "MetadataStore" in diststorage.meta.__all__
    assert sorted(diststorage.client.__all__) == [
        "Body",
        "Client",
        "ClientError",
        "Progress",
        "Response",
        "StreamedGet",
        "StreamingResponse",
        "TransportError",
        "quote_key",
    ]
