"""Transfer benchmark: large transfers, 4 KiB ops, RSS and the disk floor (python -m bench.transfer)."""
