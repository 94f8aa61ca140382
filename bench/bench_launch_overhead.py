#!/usr/bin/env python
"""What a trial costs on Ray beyond its training: CPU seconds per trial of a launch vs the same trials in-process.

For a study (default ``examples/quickstart.toml``, 16 trials) it alternates, ``--repeats`` times each:

* **ray**: ``sweeper.launch.runner.launch_study`` on a fresh local Ray into a temporary SQLite database, in a
  fresh subprocess. Measured there: the driver's ``time.process_time()`` around ``launch_study`` and around
  ``Tuner.fit`` alone (wrapped), and wall time. The CPU of every process Ray starts (GCS, raylet, workers, …) is
  read from ``/proc/PID/stat`` (utime + stime) by this parent process, which samples the subprocess's descendants
  every 100 ms and keeps each process's last reading (``getrusage(RUSAGE_CHILDREN)`` cannot see them: the raylet
  does not collect its workers' usage). The subprocess is a child subreaper (``prctl(PR_SET_CHILD_SUBREAPER)``),
  so processes orphaned at shutdown stay in its tree. What a process spends in its last < 100 ms is missed.
* **inline**: ``sweeper.launch.inline.run_inline`` on the same spec, in a fresh subprocess: every trial one after
  another in that process, unpacked (``pack=1``, as a Ray trial runs), same trial code, same writer
  (``time.process_time()`` around it).

Per trial: total = (driver CPU in ``launch_study`` + CPU of all Ray processes) / trials; training =
inline CPU / trials; overhead = total − training (worker start-up and imports, Ray's daemons, Tune's and
the callback's driver work, checkpoints). Module imports of the two subprocesses themselves are excluded.

    python bench/bench_launch_overhead.py [--spec examples/quickstart.toml] [--repeats 2]

CPU seconds are robust to a busy host; wall times are not (another job's load stretches them).

Measured on 2 shared cores (load average ≈ 2.7, another benchmark running), quickstart, medians of 2 launches,
before (d6ff38c: a fresh worker per trial at nice 15) and after (reused workers at nice 0, cached data sets):

    per trial, CPU s                      before   after
    in-process training                    0.642   0.641
    driver, launch_study                   0.091   0.063
      of which Tuner.fit                   0.059   0.029
    every Ray process                      4.340   1.264
      workers                              4.115   1.109
    total                                  4.431   1.327
    overhead (total − training)            3.789   0.686
    worker processes per launch               18       2
    wall per study, s                       72.3    22.5    (in-process: 10.5)
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import inspect
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PR_SET_CHILD_SUBREAPER = 36


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[int, int, float]]:
    """{pid: (ppid, start time in ticks, utime + stime in s)} of every process now."""
    table = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            table[int(entry.name)] = (int(fields[1]), int(fields[19]), cpu)
    return table


def _kind(pid: int) -> str:
    """What a Ray process is, from its name: workers (``ray::IDLE``, ``ray::ImplicitFunc``, …), raylet, gcs_server,
    or other (dashboard and runtime-env agents, log monitor, autoscaler monitor, dashboard)."""
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return "other"
    name = cmdline if cmdline.startswith("ray::") else comm
    if name.startswith("ray::") and "Agent" in name:  # ray::DashboardAgent, ray::RuntimeEnvAgent
        return "other"
    if name.startswith("ray::") or "default_worker.py" in cmdline:
        return "workers"
    return comm if comm in ("raylet", "gcs_server") else "other"


class TreeSampler:
    """Samples the CPU of every descendant of ``root`` (not ``root`` itself) until stopped; keeps the last reading."""

    def __init__(self, root: int, every_s: float = 0.1):
        self.root, self.every_s = root, every_s
        self.last: dict[tuple[int, int], float] = {}  # (pid, start time) → CPU s
        self.kinds: dict[tuple[int, int], str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.every_s)

    def sample(self) -> None:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        todo, tree = list(children.get(self.root, [])), set()
        while todo:
            pid = todo.pop()
            tree.add(pid)
            todo.extend(children.get(pid, []))
        known = {pid for pid, _ in self.last}
        for pid in tree | known:  # a known process that left the tree (re-parented) is still followed
            if pid in table:
                _, start, cpu = table[pid]
                key = (pid, start)
                if pid in tree or key in self.last:
                    self.last[key] = cpu
                # a worker is forked by the raylet, then execs, then renames itself: classify until it is a worker
                if self.kinds.get(key) != "workers":
                    self.kinds[key] = _kind(pid)

    def stop(self) -> dict[str, float]:
        """CPU seconds by kind of process, and "processes_<kind>" counts."""
        self._stop.set()
        self._thread.join()
        out: dict[str, float] = {}
        for key, cpu in self.last.items():
            kind = self.kinds.get(key, "other")
            out[kind] = out.get(kind, 0.0) + cpu
            out[f"processes_{kind}"] = out.get(f"processes_{kind}", 0) + 1
        return out


def _reap_all(timeout_s: float = 60.0) -> None:
    """Wait for every child (and orphaned descendant, as subreaper); SIGKILL stragglers after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        if time.monotonic() > deadline:
            for child, (ppid, _, _) in _proc_table().items():
                if ppid == os.getpid():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.05)


def _timed(method, total: list[float]):
    def timed(*args, **kwargs):
        start = time.process_time()
        try:
            return method(*args, **kwargs)
        finally:
            total[0] += time.process_time() - start

    return timed


def one_ray(spec_path: str) -> dict:
    """Child-process body: one launch on a fresh local Ray; prints its figures as JSON."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    from ray import tune

    from sweeper.expand import expand
    from sweeper.launch.runner import LaunchOptions, launch_study
    from sweeper.launch.writer_callback import DbWriterCallback
    from sweeper.spec import load_spec

    spec = load_spec(spec_path)
    fit_cpu: list[float] = []
    original_fit = tune.Tuner.fit

    def timed_fit(self):
        start = time.process_time()
        try:
            return original_fit(self)
        finally:
            fit_cpu.append(time.process_time() - start)

    tune.Tuner.fit = timed_fit
    callback_cpu = [0.0]
    for method in [m for m in vars(DbWriterCallback) if m.startswith("on_")]:
        setattr(DbWriterCallback, method, _timed(getattr(DbWriterCallback, method), callback_cpu))
    with tempfile.TemporaryDirectory() as tmp:
        options = LaunchOptions(db_url=f"sqlite:///{tmp}/bench.db", storage=f"{tmp}/ray", progress=False)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        outcome = launch_study(spec, options)
        driver_cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        _reap_all()  # Ray's processes stay in this tree until they are gone, for the parent's sampler
    assert outcome.ok, outcome
    return {"trials": len(expand(spec)), "driver_cpu": driver_cpu, "fit_cpu": sum(fit_cpu),
            "callback_cpu": callback_cpu[0], "wall": wall}


def one_inline(spec_path: str) -> dict:
    from db.engine import open_db
    from sweeper.expand import expand
    from sweeper.launch.inline import run_inline
    from sweeper.spec import load_spec

    spec = load_spec(spec_path)
    # one trial at a time, as a Ray trial runs (run_inline may pack trials that share a step into one)
    unpacked = {"pack": 1} if "pack" in inspect.signature(run_inline).parameters else {}
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_db(f"sqlite:///{tmp}/bench.db", create=True)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        statuses = run_inline(spec, engine, **unpacked)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        engine.dispose()
    assert set(statuses.values()) == {"completed"}, statuses
    return {"trials": len(expand(spec)), "cpu": cpu, "wall": wall}


def run_sampled(script: str, args: list[str]) -> tuple[dict, dict[str, float]]:
    """Run ``python script *args`` (one torch thread); its last stdout line as JSON, and the CPU seconds of its
    descendants by kind (``TreeSampler``)."""
    child = subprocess.Popen([sys.executable, script, *args], cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    sampler = TreeSampler(child.pid)
    out, err = child.communicate()
    by_kind = sampler.stop()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{err[-4000:]}")
    return json.loads(out.strip().splitlines()[-1]), by_kind


def run_child(kind: str, spec: str) -> dict:
    result, by_kind = run_sampled(__file__, ["--child", kind, "--spec", spec])
    result["ray_cpu"] = sum(v for k, v in by_kind.items() if not k.startswith("processes_"))
    result["ray_by_kind"] = by_kind
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", default=str(REPO / "examples" / "quickstart.toml"))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--child", choices=("ray", "inline"), help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print the raw figures as JSON too")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_ray(args.spec) if args.child == "ray" else one_inline(args.spec)))
        return

    rays, inlines = [], []
    for _ in range(args.repeats):  # interleaved, so that a change in the host's load hits both alike
        inlines.append(run_child("inline", args.spec))
        rays.append(run_child("ray", args.spec))
    n = rays[0]["trials"]

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    def by_kind(kind):
        return statistics.median(r["ray_by_kind"].get(kind, 0.0) for r in rays) / n

    training = med(inlines, "cpu") / n
    driver, fit, ray_cpu = med(rays, "driver_cpu") / n, med(rays, "fit_cpu") / n, med(rays, "ray_cpu") / n
    total = driver + ray_cpu
    print(f"{Path(args.spec).name}: {n} trials, {args.repeats} launches of each kind (medians), "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'per trial':<56} {'CPU s':>8}")
    rows = [
        ("in-process training (run_inline)", training),
        ("Ray launch: driver, whole launch_study", driver),
        ("  of which Tuner.fit", fit),
        ("    of which the DB callback (DbWriterCallback.on_*)", med(rays, "callback_cpu") / n),
        ("Ray launch: every Ray process", ray_cpu),
        *[(f"  {kind}", by_kind(kind)) for kind in ("workers", "raylet", "gcs_server", "other")],
        ("Ray launch: total", total),
        ("overhead = total − in-process training", total - training),
    ]
    for label, value in rows:
        print(f"{label:<56} {value:>8.3f}")
    print(f"{'wall per study':<56} {'s':>8}")
    print(f"{'  in-process':<56} {med(inlines, 'wall'):>8.1f}")
    print(f"{'  Ray launch':<56} {med(rays, 'wall'):>8.1f}")
    print(f"overhead / training = {(total - training) / training:.2f}; worker processes per launch: "
          f"{statistics.median(r['ray_by_kind'].get('processes_workers', 0) for r in rays):.0f}")
    if args.json:
        print(json.dumps({"ray": rays, "inline": inlines}))


if __name__ == "__main__":
    main()
