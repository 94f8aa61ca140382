"""A Ray worker that trains a pack imports only what training needs: not the database layer (SQLAlchemy), not
SciPy (only the sharpness diagnostic needs it), not torch._dynamo (building a torch optimizer imports it; a pack
checkpoints its members without one) — each ≈ 0.25–1 CPU s per worker process."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO_ROOT

PROBE = """
import json, sys
import sweeper.launch.trainable
from sweeper.expand import expand
from sweeper.train.pack import ListPackReporter, PackedTrial
from tests.helpers import make_spec
trials = expand(make_spec(seeds=[0, 1], log={"every_epochs": 0.5, "report_seconds": 1e-6}))
reporter = ListPackReporter()
PackedTrial(trials).run(reporter)
states = sum(r.state is not None for batch in reporter.reports for r in batch.values())
print(json.dumps({"states": states, "heavy": [m for m in sys.argv[1:] if m in sys.modules]}))
"""


def test_a_pack_worker_imports_neither_the_database_nor_scipy_nor_dynamo() -> None:
    forbidden = ["sqlalchemy", "db.models", "scipy", "torch._dynamo", "mnist1d"]
    done = subprocess.run([sys.executable, "-c", PROBE, *forbidden], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": ""}, check=False)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["states"] >= 2  # members were checkpointed
    assert seen["heavy"] == []
