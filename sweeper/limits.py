"""Upper bounds a study must respect: far beyond any legitimate study, low enough that a typo (1e300, 1e-9) is
refused before it runs; each error message names its limit. README.md, "Spec reference", lists them. Plain
constants, importable without pydantic or torch (the CLI shows ``DEFAULT_MAX_TRIALS`` in its help)."""

from __future__ import annotations

MAX_RAW_STEPS = 10**9
"""Raw optimizer steps of one trial (10⁹: 11 days at 1 ms a step; fits the databases' 32-bit step columns)."""
MAX_POINTS = 10**6
"""Logged points per run (budget / cadence), and evaluations per run of each diagnostic."""
MAX_TRAJECTORY_SAMPLES = 10**7
"""Samples of the trajectory diagnostic per run (each a vector of ``projections`` numbers)."""
MAX_EXAMPLES = 10**8
"""n_train, n_test, eval_samples, batch sizes."""
MAX_DIM = 10**6
"""Input dimension of the synthetic data sets."""
MAX_DATA_VALUES = 10**10
"""(n_train + n_test) × dim of a synthetic data set: 40 GB in float32."""
MAX_WIDTH = 65536
"""Hidden units (mlp, teacher) and channels of the widest cnn stage."""
MAX_DEPTH = 1000
"""Hidden layers of an mlp, stages of a cnn."""
MAX_RESNET_DEPTH = 2000
"""PreResNet depth (the deepest in He et al. 2016 is 1202)."""
MAX_WIDTH_FACTOR = 64.0
"""Channel multiplier of preresnet / vgg."""
MAX_RATE = 1e6
"""Learning rates, weight decays, Adam's eps, schedule multipliers, scaling factors κ, SVAG l."""
MAX_SEED = 2**31 - 1
"""Seeds: 0 ≤ seed < 2³¹ (the runs.seed column is a 32-bit integer on PostgreSQL; numpy seeds need < 2³²)."""
MAX_COUNT = 10**5
"""Counts inside a diagnostic (iterations, probes, top-k eigenvalues, covariance samples)."""
MAX_REPORT_SECONDS = 86400.0
"""How often a trial reports (a day)."""
CIFAR_TRAIN_SIZE = 50000
"""n_train of CIFAR-10/100 when ``data.n_train`` is not given (for the step and point counts)."""
DEFAULT_MAX_TRIALS = 10_000
"""The largest study ``sweeper launch`` expands unless ``--max-trials`` allows more."""
