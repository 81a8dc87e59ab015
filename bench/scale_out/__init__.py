"""Scale-out: one gateway on SQLite against two on PostgreSQL (python -m bench.scale_out)."""
