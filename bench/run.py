"""Runs every benchmark: `python -m bench.run [--quick] [--only NAME ...]`.

Prints a table per benchmark and a summary of the goals, and writes all figures to
var/bench/results.json (or --output).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from bench import (
    baselines,
    customer,
    gateway,
    incident,
    lag,
    open_ticket,
    peer,
    quality,
    replay,
    scale_out,
)
from bench.common import console, machine, mark

NAMES = (
    "baselines",
    "open_ticket",
    "replay",
    "lag",
    "peer",
    "incident",
    "quality",
    "customer",
    "gateway",
    "scale_out",
)


async def main(quick: bool, only: set[str]) -> dict[str, Any]:
    results: dict[str, Any] = {
        "machine": machine(),
        "quick": quick,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    info = results["machine"]
    console.print(
        f"[bold]CareOps benchmarks[/] ({'quick' if quick else 'full'}) on {info['cpu']}, "
        f"{info['cores']} cores, {info['implementation']} {info['python']}, {info['system']}\n"
    )
    started = time.perf_counter()
    wanted = only or set(NAMES)
    if "baselines" in wanted or "open_ticket" in wanted:
        results["baselines"] = await baselines.run(quick)
    if "open_ticket" in wanted:
        results["open_ticket"] = await open_ticket.run(quick, results["baselines"])
    if "replay" in wanted:
        results["replay"] = await replay.run(quick)
    if "lag" in wanted:
        results["lag"] = await lag.run(quick)
    if "peer" in wanted:
        results["peer"] = await peer.run(quick)
    if "incident" in wanted:
        results["incident"] = await incident.run(quick)
    if "quality" in wanted:
        results["quality"] = await quality.run(quick)
    if "customer" in wanted:
        results["customer"] = await customer.run(quick)
    if "gateway" in wanted:
        results["gateway"] = await gateway.run(quick)
    if "scale_out" in wanted:
        results["scale_out"] = await scale_out.run(quick)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["goals"] = [
        {"benchmark": name, **goal}
        for name in NAMES
        if isinstance(results.get(name), dict)
        for goal in results[name].get("report", {}).get("goals", [])
    ]
    summary = Table("benchmark", "goal", "target", "measured", "", title="Goals")
    for goal in results["goals"]:
        summary.add_row(
            goal["benchmark"], goal["name"], goal["target"], goal["measured"], mark(goal["met"])
        )
    console.print(summary)
    console.print(f"total {results['seconds']} s")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--only", nargs="*", choices=NAMES, default=[], help="run only these")
    parser.add_argument("--output", type=Path, default=Path("var/bench/results.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    outcome = asyncio.run(main(args.quick, set(args.only)))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(outcome, indent=2))
    console.print(f"results written to {args.output}")
