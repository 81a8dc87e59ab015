"""The table of a ``--baseline`` run (baseline.py): each figure's median per side over the
rounds, its range, and new/baseline; then the ceilings, and each side's transfers as a share of
them."""

from __future__ import annotations

import os
import statistics

from bench.common.report import format_table, size_label
from bench.transfer.baseline import BASELINE, NEW, BaselineRun
from bench.transfer.ceilings import upload_bound
from bench.transfer.results import NODES, REDUNDANCY


def _cell(run: BaselineRun, side: str, figure: str) -> str:
    values = run.values(side, figure)
    if not values:
        return "n/a"
    median = statistics.median(values)
    spread = f" [{min(values):,.2f}–{max(values):,.2f}]" if len(values) > 1 else ""
    return f"{median:,.2f}{spread}"


def _share_lines(run: BaselineRun) -> list[str]:
    """Each side's median transfer rates of the object size against the ceilings that bound
    them (measured once, before the first round)."""
    ceilings, label = run.ceilings, size_label(run.config.size)
    if ceilings is None:
        return []
    lines = []
    floor = run.floor.object_mb_s if run.floor is not None else None
    up_bound = upload_bound(floor, ceilings)
    down_bound = ceilings.download_bound()
    for side in (BASELINE, NEW):
        parts = []
        up, down = run.median(side, f"upload {label}"), run.median(side, f"download {label}")
        if up is not None and up_bound is not None and up_bound[1]:
            parts.append(f"upload {up / up_bound[1] * 100:.0f} % of {up_bound[0]}")
        if down is not None and down_bound is not None and down_bound.mb_s:
            parts.append(f"download {down / down_bound.mb_s * 100:.0f} % of {down_bound.label}")
        if parts:
            lines.append(f"  {side}: " + "; ".join(parts))
    return lines


def print_baseline(run: BaselineRun) -> None:
    config = run.config
    print(
        f"\ndiststorage, working tree ({run.new_commit[:10]}) against {config.rev} "
        f"({run.baseline_commit[:10]}): {NODES} nodes, {REDUNDANCY}, loopback, "
        f"{os.cpu_count()} CPUs, {config.rounds} rounds alternating. Medians [range];"
        " MB = 10^6 bytes, MiB = 2^20 bytes.\n"
    )
    for side in (BASELINE, NEW):
        print(f"  {side}: diststorage from {run.imports.get(side, '?')}")
    print()
    rows = []
    for figure, unit in run.units.items():
        ratio = run.ratio(figure)
        rows.append(
            [
                figure,
                unit,
                _cell(run, BASELINE, figure),
                _cell(run, NEW, figure),
                f"{ratio:.3f}" if ratio is not None else "n/a",
            ]
        )
    print(format_table(["Figure", "Unit", BASELINE, NEW, "new/baseline"], rows))
    if run.ceilings is not None:
        print("\nCeilings (measured once, before the first round):")
        if run.floor is not None:
            print(f"  disk floor {run.floor.object_mb_s:,.0f} MB/s (object bytes)")
        for ceiling in run.ceilings.found.values():
            rate = f"{ceiling.mb_s:,.0f} MB/s" if ceiling.ok else "failed"
            print(f"  {ceiling.label}: {rate}")
        for line in _share_lines(run):
            print(line)
    if run.failures:
        print("\n!!! FAILURES (wrong data or failed operations):")
        for failure in run.failures:
            print(f"  - {failure}")
