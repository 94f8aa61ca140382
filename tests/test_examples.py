"""Every example spec is valid (GPU/CIFAR ones with data.root pointed at a fake CIFAR-10)."""


from pathlib import Path

import pytest

from sweeper.expand import expand
from sweeper.spec import load_spec, tomllib
from sweeper.testing.fake_cifar import write_fake_cifar
from tests.helpers import REPO_ROOT

EXAMPLES = sorted((REPO_ROOT / "examples").rglob("*.toml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(REPO_ROOT / "examples")) for p in EXAMPLES])
def test_example_is_valid(path: Path, tmp_path):
    data_name = tomllib.loads(path.read_text())["data"]["name"]
    overrides = {}
    if data_name.startswith("cifar"):
        overrides["data.root"] = str(write_fake_cifar(tmp_path, data_name))
    assert len(expand(load_spec(path, overrides))) >= 1
