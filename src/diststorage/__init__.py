"""diststorage: a distributed file and object store."""

__version__ = "0.1.0"
