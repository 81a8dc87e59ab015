"""``python -m diststorage.node``: runs one storage node, as ``diststorage node`` does."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from diststorage.core.settings import NodeSettings
from diststorage.node.app import run_node


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m diststorage.node")
    parser.add_argument("--listen", required=True, help="HOST:PORT to serve gRPC on")
    parser.add_argument("--data", required=True, type=Path, help="data directory")
    parser.add_argument(
        "--gateway", action="append", default=[], help="HOST:PORT of a gateway (repeatable)"
    )
    parser.add_argument("--capacity", type=int, default=None, help="capacity in bytes")
    parser.add_argument("--advertise", default=None, help="HOST:PORT gateways should dial")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s node %(levelname)s %(name)s: %(message)s",
    )
    settings = NodeSettings(
        listen=args.listen,
        advertise=args.advertise,
        data_dir=args.data,
        gateways=tuple(args.gateway),
        capacity_bytes=args.capacity,
    )
    run_node(settings)


if __name__ == "__main__":
    main()
