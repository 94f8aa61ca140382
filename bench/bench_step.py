"""Step time of a sweeper trial against a bare hand-written PyTorch loop (same model, data, batch size).

    python bench/bench_step.py [--device cpu|cuda] [--epochs 2] [--repeats 3]

For each case, median over ``--repeats`` alternating timings, in µs per raw optimizer step:
  bare       sample, forward, cross-entropy, backward, SGD step — what one writes by hand;
  bare+eval  the same plus an evaluation of train/test subsets at the trial's logged points (same sizes);
  step       sweeper's training step alone (SVAG path, sampled angular-update / grad-norm measurement);
  trial      a whole sweeper trial (run_trial: points, evaluation, reporting), diagnostics off.
Ratios: step/bare (the training step's overhead) and trial/(bare+eval) (same work end to end). Target ≤ 1.10.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from sweeper.expand import expand
from sweeper.models import build_model
from sweeper.reporter import ListReporter
from sweeper.spec import parse_spec
from sweeper.testing.fake_cifar import write_fake_cifar
from sweeper.train.loop import Trial


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_loop(trial: Trial, evaluate_at: set[int]) -> None:
    """What a researcher would write by hand; evaluates at the steps in ``evaluate_at`` (empty: never)."""
    cfg, data, dev = trial.config, trial.data, trial.device
    torch.manual_seed(0)
    model = build_model(cfg.model.name, data.input_shape, data.num_outputs,
                        **cfg.model.model_dump(exclude={"name"})).to(dev)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, momentum=0.9)
    x, y, gen = data.x_train, data.y_train, torch.Generator(device=dev).manual_seed(0)
    n_eval = cfg.log.eval_samples
    for step in range(trial.clock.total_steps + 1):
        if step in evaluate_at:
            model.eval()
            with torch.no_grad():
                for xs, ys in ((x[:n_eval], y[:n_eval]), (data.x_test[:n_eval], data.y_test[:n_eval])):
                    out = model(xs)
                    F.cross_entropy(out, ys).item(), (out.argmax(-1) == ys).float().mean().item()
            model.train()
        if step == trial.clock.total_steps:
            break
        idx = torch.randint(len(x), (cfg.batch_size,), generator=gen, device=dev)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def timed(fn, device: torch.device) -> float:
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def case(raw: dict, device: str, repeats: int) -> dict:
    raw = raw | {"device": device, "seeds": [0], "optimizer": {"name": "sgd", "momentum": 0.9}}
    config = expand(parse_spec(raw))[0]
    probe = Trial(config)
    dev, steps, data = probe.device, probe.clock.total_steps, probe.data
    step_trial = Trial(config, data=data)
    lr, wd = step_trial.hyperparameters()
    every = config.log.measure_every

    def sweeper_steps() -> None:
        for i in range(steps):
            step_trial.train_step(lr, wd, measure=(i + 1) % every == 0)

    variants = {
        "bare": lambda: bare_loop(probe, set()),
        "bare+eval": lambda: bare_loop(probe, set(probe.clock.log_steps)),
        "step": sweeper_steps,
        "trial": lambda: Trial(config, data=data).run(ListReporter()),
    }
    times: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(repeats):
        for key, fn in variants.items():
            times[key].append(timed(fn, dev) / steps * 1e6)
    return {"device": str(dev), "steps": steps, **{k: statistics.median(v) for k, v in times.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    budget, log = {"epochs": args.epochs}, {"every_epochs": 1.0, "eval_samples": 1000}
    root = write_fake_cifar(Path(tempfile.mkdtemp()), "cifar10", n_train_per_batch=400, n_test=1000)
    cases = {
        "MNIST-1D MLP 256x2, B=128": {"data": {"name": "mnist1d"}, "model": {"name": "mlp", "width": 256, "depth": 2}},
        "PreResNet-20 x0.5, 3x32x32, B=128": {"data": {"name": "cifar10", "root": str(root), "augment": False},
                                             "model": {"name": "preresnet", "depth": 20, "width": 0.5}},
    }
    head = f"{'case':36s} {'device':6s} {'steps':>5s} {'bare':>8s} {'bare+eval':>9s} {'step':>8s} {'trial':>8s}"
    print(head + f" {'step/bare':>9s} {'trial/(bare+eval)':>17s}   (µs per step)")
    for name, parts in cases.items():
        raw = {"name": "bench", "sweep": {"batch_size": 128, "lr": 0.05}, "budget": budget, "log": log, **parts}
        r = case(raw, args.device, args.repeats)
        print(f"{name:36s} {r['device']:6s} {r['steps']:5d} {r['bare']:8.0f} {r['bare+eval']:9.0f} {r['step']:8.0f} "
              f"{r['trial']:8.0f} {r['step'] / r['bare']:9.3f} {r['trial'] / r['bare+eval']:17.3f}")


if __name__ == "__main__":
    main()
