"""``python -m diststorage.gateway.worker_main``: one worker process of a gateway, started by
its supervisor (``pool.supervisor``) with its handoff on stdin. Not for running by hand."""

from diststorage.gateway.processes import run_gateway_worker

if __name__ == "__main__":
    run_gateway_worker()
