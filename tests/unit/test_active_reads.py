from diststorage.gateway.readers import ActiveReads
from diststorage.meta import ChunkRef


def test_deletion_waits_for_the_last_reader() -> None:
    reads = ActiveReads()
    deleted: list[str] = []
    chunks = [ChunkRef("c1", "n1")]
    with reads.reading("obj"), reads.reading("obj"):
        reads.after_reads("obj", chunks, lambda: deleted.append("obj"))
        assert deleted == [] and reads.parks("c1")
    assert deleted == ["obj"] and not reads.parks("c1")


def test_no_reader_deletes_at_once() -> None:
    reads = ActiveReads()
    deleted: list[str] = []
    reads.after_reads("obj", [ChunkRef("c1", "n1")], lambda: deleted.append("obj"))
    assert deleted == ["obj"] and not reads.parks("c1")
