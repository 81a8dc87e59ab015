"""Transfer benchmark: large transfers, 4 KiB ops, RSS and the disk floor.

Run with ``python -m bench.transfer``."""
