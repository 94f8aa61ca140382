"""What a study leaves in its Tune storage folder that a resume needs: the packs it ran, each pack's latest
checkpoint, and the results the database has not taken yet.

``<storage>/<study>/sweeper-packs.json`` records the packs of a launch (lists of trial ids), so a resume runs the
same packs (a member's state lives in its pack's checkpoint). Every launch or resume writes its Tune trials under
``<storage>/<study>[.resume-<n>]/<pack name>/checkpoint_*/state.pt``; a resume starts each unfinished pack from the
newest such checkpoint of any earlier attempt. This replaces ``Tuner.restore``, whose saved experiment state can
name a checkpoint that Tune has already rotated away when the driver was killed between the two.
``<storage>/<study>/sweeper-journal.jsonl`` holds the results that the database could not take during an outage
(``db.journal``); a resume writes them first.
"""

from __future__ import annotations

import json
from pathlib import Path

PACKS_FILE = "sweeper-packs.json"
JOURNAL_FILE = "sweeper-journal.jsonl"  # results the database could not take yet (db.journal)
STATE_FILE = "state.pt"
STEPS_FILE = "steps.json"  # beside the state: {trial id: step} of the members it holds


def member_ids(tune_config: dict) -> list[str]:
    """The trial ids of a Tune trial's pack, from its config (``{"pack": {"trials": [...], "resume_from": ...}}``)."""
    return [t["trial_id"] for t in tune_config["pack"]["trials"]]


def pack_name(trial_ids: list[str]) -> str:
    """A pack's Tune trial name: its first trial id, and how many more it carries."""
    return trial_ids[0] + (f"+{len(trial_ids) - 1}" if len(trial_ids) > 1 else "")


def write_packs(storage: str, study: str, packs: list[list[str]]) -> None:
    folder = Path(storage) / study
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PACKS_FILE).write_text(json.dumps(packs))


def journal_path(storage: str, study: str) -> Path:
    return Path(storage) / study / JOURNAL_FILE


def read_packs(storage: str, study: str) -> list[list[str]] | None:
    path = Path(storage) / study / PACKS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def attempt_name(storage: str, study: str) -> str:
    """The Tune experiment name of the next attempt: the study's name, then ``<study>.resume-<n>``."""
    root = Path(storage)
    if not (root / study).exists() or not any(p.is_dir() for p in (root / study).iterdir()):
        return study
    n = 1
    while (root / f"{study}.resume-{n}").exists():
        n += 1
    return f"{study}.resume-{n}"


def latest_checkpoint(storage: str, study: str, name: str, stored: dict[str, int]) -> str | None:
    """The newest ``checkpoint_*`` folder of pack ``name`` (over every attempt) whose members are all at or before
    the steps ``stored`` in the database ({trial id: last step written}). A worker persists a checkpoint before
    the driver writes the points reported with it, so the very newest may be ahead of the database when the driver
    was killed; resuming there would skip those points, while an older one only re-reports points (idempotent)."""
    root = Path(storage)
    found = []
    for folder in [root / study, *sorted(root.glob(f"{study}.resume-*"))]:
        for c in (folder / name).glob("checkpoint_*"):
            if (c / STATE_FILE).exists() and (c / STEPS_FILE).exists():
                steps = json.loads((c / STEPS_FILE).read_text())
                if all(step <= stored.get(tid, -1) for tid, step in steps.items()):
                    found.append(c)
    return str(max(found, key=lambda c: (c / STATE_FILE).stat().st_mtime)) if found else None
