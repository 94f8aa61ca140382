"""Fixtures of the check tests.

* ``one_thread`` — torch on one thread for the test (tiny models spin badly on a shared 2-core machine, 3–4× slower).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
