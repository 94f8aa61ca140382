"""Options and arguments shared by several commands, as ``Annotated`` types (one definition and help text each),
and the choices ``--help`` lists (Enums). Importing this module imports neither torch nor pydantic."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from sweeper.names import CHECK_NAMES

CheckName = Enum("CheckName", {name: name for name in (*CHECK_NAMES, "all")}, type=str)  # type: ignore[misc]  # members from CHECK_NAMES
"""A check of ``sweeper.checks``, or ``all``."""


class ExportFormat(str, Enum):
    """File format of ``sweeper export``."""

    csv = "csv"
    parquet = "parquet"


class CalibrationCase(str, Enum):
    """A known-truth case of ``sweeper calibrate``."""

    holds = "holds"
    fails = "fails"
    borderline = "borderline"


Db = Annotated[str | None, typer.Option(
    "--db", envvar="SWEEPER_DB", show_envvar=True,
    help="Database URL (default sqlite:///sweeper.db; PostgreSQL: postgresql://user@host/db).")]
Json = Annotated[bool, typer.Option(
    "--json", help="Machine-readable JSON on stdout (shapes: README.md, 'Command line').")]
StudyName = Annotated[str, typer.Argument(metavar="STUDY", help="Study name.", show_default=False)]
SpecFile = Annotated[Path, typer.Argument(metavar="SPEC", help="Study file (TOML).", show_default=False)]
OutputDir = Annotated[Path, typer.Option("-o", "--output", help="Output folder (created if missing).",
                                         show_default=False)]
MaxTrials = Annotated[int, typer.Option(
    "--max-trials", help="Refuse a study whose grid has more trials (counted before expanding).")]
"""Its default is ``sweeper.limits.DEFAULT_MAX_TRIALS``."""

# ------------------------------------------------------------------------- launch and resume (Ray Tune options)
Address = Annotated[str | None, typer.Option(
    "--address", envvar="RAY_ADDRESS", help="Ray cluster address (default: start a local Ray).")]
CpusPerTrial = Annotated[float, typer.Option("--cpus-per-trial", help="CPUs reserved per trial (per pack).")]
GpusPerTrial = Annotated[float, typer.Option("--gpus-per-trial", help="GPUs per trial; fractions share a GPU.")]
MaxConcurrent = Annotated[int | None, typer.Option(
    "--max-concurrent", help="Trials running at once (default: as many as the cluster fits).")]
MaxFailures = Annotated[int, typer.Option("--max-failures", help="Retries of a trial whose worker died.")]
Pack = Annotated[str, typer.Option(
    "--pack", help="Trials per pack (one process, one vectorized step): 'auto' (pack where it is faster: small "
                   "models on a CPU, memory-bounded on CUDA) or at most N; 1 disables packing. On resume it packs "
                   "only trials the launch did not record in packs (recorded packs are kept).")]

DEFAULT_PACK = "auto"
DEFAULT_CPUS_PER_TRIAL = 1.0
DEFAULT_GPUS_PER_TRIAL = 0.0
DEFAULT_MAX_FAILURES = 2


def parse_pack(value: str) -> int | str:
    """``--pack``: 'auto' or a whole number ≥ 1; one line, exit 2, otherwise."""
    from cli.output import fail

    if value == "auto":
        return value
    if not (value.isascii() and value.isdigit() and int(value) >= 1):
        fail(f"--pack: 'auto' or a whole number ≥ 1 (got {value!r})")
    return int(value)
