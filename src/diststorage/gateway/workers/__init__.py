"""Background work of the gateway: repair, garbage collection, the leader lease, node lifecycle
and rebalancing, each a Worker (core/worker.py) run by the composition root."""
