"""Two Ray nodes simulated with ray.cluster_utils.Cluster: trials spread over both; only the driver writes SQL."""

from __future__ import annotations

import subprocess
import sys

import pytest
import ray
from ray.cluster_utils import Cluster

from sweeper.launch.runner import LaunchOptions, launch_study
from tests.helpers import REPO_ROOT
from tests.launch.study import assert_complete, small_study, stored

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_trials_spread_over_two_nodes(two_nodes, sqlite_url, tmp_path):
    spec = small_study(name="two-nodes")
    outcome = launch_study(spec, LaunchOptions(db_url=sqlite_url, address=two_nodes.address,
                                               storage=str(tmp_path / "ray"), progress=False))
    assert outcome.counts == {"completed": 8}
    rows = stored(sqlite_url, spec.name)
    assert_complete(spec, rows)
    node_ids = {r["node_id"] for r in rows.values()}
    assert len(node_ids) == 2 and None not in node_ids, node_ids


def test_the_worker_side_never_imports_the_database():
    code = "import sys, sweeper.launch.trainable; print('db' in sys.modules, 'sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]
