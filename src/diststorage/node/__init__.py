"""The storage node: a chunk store on local disk, served over gRPC, announced by heartbeats,
re-verified in the background by the scrubber.

``run_node(settings)`` is the daemon's blocking entry point; ``serve_node`` is the same as a
coroutine; ``ChunkStore`` is the store without the network, for tools and tests.
"""

from diststorage.node.app import run_node, serve_node
from diststorage.node.chunkstore import ChunkStore

__all__ = ["ChunkStore", "run_node", "serve_node"]
