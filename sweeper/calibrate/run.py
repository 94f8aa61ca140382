"""Run calibration cases: each case R times with fresh seeds (in-process, into a scratch SQLite database), the
check applied to each replicate study, verdicts tabulated against the truth."""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sweeper.calibrate.cases import RIGHT, WRONG, Case

FIRST_SEED = 1000  # replicate i uses seeds FIRST_SEED + 2i, +1: disjoint from the examples' seeds


@dataclass
class CaseResult:
    """Verdict counts of one case over its replicates; rates are fractions of the replicates."""

    check: str
    case: str
    truth: str
    effect: float  # largest true effect / tolerance (NaN when the truth holds by construction)
    why: str
    seeds: int
    replicates: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    cpu_seconds: float = 0.0

    @property
    def wrong_way(self) -> float:
        return self.counts.get(WRONG.get(self.truth, ""), 0) / self.replicates if self.replicates else math.nan

    @property
    def decisive(self) -> float:
        n = self.counts.get("CONFIRMED", 0) + self.counts.get("REFUTED", 0)
        return n / self.replicates if self.replicates else math.nan

    @property
    def right(self) -> float:
        return self.counts.get(RIGHT.get(self.truth, ""), 0) / self.replicates if self.replicates else math.nan

    def as_json(self) -> dict[str, object]:
        return asdict(self) | {"wrong_way": self.wrong_way, "decisive": self.decisive, "right": self.right}


def run_case(case: Case, replicates: int, seeds: int = 2,
             progress: Callable[[CaseResult], None] | None = None) -> CaseResult:
    """Run ``case`` ``replicates`` times with ``seeds`` fresh seeds each; CPU seconds are this process's."""
    import torch

    from db.engine import open_db
    from sweeper.checks.base import StudyData
    from sweeper.checks.registry import run_check
    from sweeper.launch.inline import run_inline
    from sweeper.spec import parse_spec

    truth, effect, why = case.truth()
    out = CaseResult(case.check, case.name, truth, effect, why, seeds)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: one thread each
    start = time.process_time()
    try:
        with tempfile.TemporaryDirectory(prefix="sweeper-calibrate-") as tmp:
            engine = open_db(f"sqlite:///{Path(tmp) / 'calibrate.db'}", create=True)
            for i in range(replicates):
                first = FIRST_SEED + seeds * i
                spec = parse_spec(case.with_seeds(f"cal-{case.check}-{case.name}-{i}",
                                                  list(range(first, first + seeds))))
                run_inline(spec, engine)
                verdict = run_check(case.check, StudyData.load(engine, spec.name))
                out.counts = dict(Counter(out.counts) + Counter([verdict.verdict]))
                out.replicates += 1
                if progress:
                    progress(out)
            engine.dispose()
    finally:
        torch.set_num_threads(threads)
        out.cpu_seconds = time.process_time() - start
    return out


def table(results: list[CaseResult]) -> str:
    """A Markdown table: one row per case."""
    head = ("| check | case | truth | effect/τ | R | CONFIRMED | REFUTED | INCONCLUSIVE | wrong-way | decisive | "
            "CPU s/replicate |\n|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for r in results:
        eff = f"{r.effect:.2f}" if math.isfinite(r.effect) else "by construction"
        rows.append(f"| {r.check} | {r.case} | {r.truth} | {eff} | {r.replicates} | {r.counts.get('CONFIRMED', 0)} | "
                    f"{r.counts.get('REFUTED', 0)} | {r.counts.get('INCONCLUSIVE', 0)} | "
                    f"{_pct(r.wrong_way) if r.truth in WRONG else '—'} | {_pct(r.decisive)} | "
                    f"{r.cpu_seconds / max(r.replicates, 1):.1f} |")
    return "\n".join([head, *rows])


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%" if math.isfinite(x) else "—"
