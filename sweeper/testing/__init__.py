"""Helpers for the tests and benchmarks — never imported by the sweeper itself (tests/test_layering.py checks it).

* :mod:`sweeper.testing.faults` — fault injection into trials on Ray, loaded by a worker only when
  ``SWEEPER_TRIAL_HOOKS`` names it;
* :mod:`sweeper.testing.fake_cifar` — a tiny valid CIFAR-10/100 in the python-pickle layout;
* :mod:`sweeper.testing.ray_head` — a Ray head as ``ray start --head`` makes one, to launch against by address.

They live in the package (not under tests/) because Ray workers and the bench/ scripts import them by module name.
"""
