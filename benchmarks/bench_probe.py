"""The capacity probe's accuracy against loopback servers of known capacity, and its wall time.

Each server is the stall server's slots mode (opskit/loadtest/stallserver.py): SLOTS requests served at
once for SERVICE seconds each, a FIFO queue past that, so it completes exactly SLOTS / SERVICE req/s. The
probe runs through `opskit capacity probe` in-process (CliRunner) with an SLO the server meets up to its
capacity, so the truth for both answers is the capacity: `saturation_rate` (the most completed req/s)
and `max_rate_within_slo` (the highest offered rate held) are printed with their error against it.

    .venv/bin/python benchmarks/bench_probe.py [--step 3s] [--case SLOTS:SERVICE_S ...] [--slo "p95 < 500ms"]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from click.testing import CliRunner

from opskit.cli import cli
from opskit.loadtest.stallserver import StallSchedule, StallServer

SPEC = str(Path(__file__).resolve().parents[1] / "opskit.yaml")


def one(slots: int, service_s: float, step: str, slo: str) -> dict:
    with StallServer(StallSchedule(stall_s=0.0, service_s=service_s), slots=slots) as server, \
            tempfile.TemporaryDirectory() as tmp:
        truth = server.capacity_rps
        assert truth is not None
        t0 = time.perf_counter()
        result = CliRunner().invoke(cli, [
            "capacity", "probe", "--spec", SPEC, "--host", server.url, "--path", "/", "--slo", slo,
            "--start", f"{truth / 4:g}", "--max-rate", f"{truth * 8:g}", "--step", step,
            "--out", str(Path(tmp) / "probe"), "--output", "json"], catch_exceptions=False)
        wall = time.perf_counter() - t0
    answer = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    sat, within = answer.get("saturation_rate"), answer.get("max_rate_within_slo")
    return {"truth": truth, "slots": slots, "service_ms": service_s * 1000, "exit": result.exit_code,
            "saturation": sat, "sat_err": (sat / truth - 1) if sat else None,
            "within": within, "within_err": (within / truth - 1) if within else None,
            "limited_by": answer.get("limited_by"), "steps": len(answer.get("steps", [])), "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step", default="3s")
    ap.add_argument("--slo", default="p95 < 500ms")
    ap.add_argument("--case", action="append", default=None, metavar="SLOTS:SERVICE_S")
    args = ap.parse_args()
    cases = [tuple(c.split(":")) for c in args.case or ["2:0.02", "10:0.05", "20:0.02"]]
    print(f"load average {os.getloadavg()[0]:.1f}, step {args.step}, SLO {args.slo}")
    print("| capacity req/s | slots x service | saturation_rate (error) | max_rate_within_slo (error) | "
          "limited_by | steps | wall s |")
    print("|---:|---|---:|---:|---|---:|---:|")
    for slots, service in cases:
        r = one(int(slots), float(service), args.step, args.slo)

        def pct(v: float | None) -> str:
            return "-" if v is None else f"{v:+.1%}"

        print(f"| {r['truth']:,.0f} | {r['slots']} x {r['service_ms']:g} ms | {r['saturation'] or 0:,.1f} "
              f"({pct(r['sat_err'])}) | {r['within'] or 0:,.1f} ({pct(r['within_err'])}) | {r['limited_by']} | "
              f"{r['steps']} | {r['wall_s']:.0f} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
