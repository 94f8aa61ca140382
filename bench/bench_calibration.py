"""Calibration of every check that has known-truth cases: verdict against truth over R fresh-seed replicates.

    python bench/bench_calibration.py [--replicates 20] [--seeds 2] [--check lsr ...] [--write docs/calibration.md]

Runs ``sweeper calibrate``'s cases (``sweeper.calibrate.cases``) in this process, one torch thread, and prints a
Markdown table: per case the truth (closed form, many-seed reference, or by construction), its effect in units
of the tolerance, the verdict counts, the wrong-way rate (REFUTED when it holds, CONFIRMED when it fails) and the
decisive rate (CONFIRMED or REFUTED), with CPU seconds per replicate. Targets (2 seeds): wrong-way ≤ 5% per case,
decisive ≥ 90% on holds/fails cases. ``--write`` replaces the table between the markers in that file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import re
from pathlib import Path

from sweeper.calibrate.cases import CASES
from sweeper.calibrate.run import run_case, table

BEGIN, END = "<!-- calibration-table -->", "<!-- /calibration-table -->"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--check", action="append", help="only these checks (repeatable)")
    ap.add_argument("--write", type=Path, help="a Markdown file whose table (between markers) is replaced")
    args = ap.parse_args()
    results = []
    for case in CASES:
        if args.check and case.check not in args.check:
            continue
        r = run_case(case, args.replicates, args.seeds)
        print(f"{r.check} / {r.case}: {r.counts} ({r.cpu_seconds:.0f} CPU s)", flush=True)
        results.append(r)
    text = table(results)
    stamp = (f"Measured {dt.date.today()} with `python bench/bench_calibration.py --replicates {args.replicates} "
             f"--seeds {args.seeds}` on {platform.machine()} CPU, one torch thread.")
    print(text)
    if args.write:
        doc = args.write.read_text()
        block = f"{BEGIN}\n{stamp}\n\n{text}\n{END}"
        args.write.write_text(re.sub(f"{re.escape(BEGIN)}.*?{re.escape(END)}", lambda _: block, doc, flags=re.S))


if __name__ == "__main__":
    main()
