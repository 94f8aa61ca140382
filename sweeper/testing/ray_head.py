"""A Ray head started as a cluster operator starts one (``ray start --head --block``), for tests and benchmarks
that launch with ``--address HOST:PORT``."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

RAY_CLI = [sys.executable, "-m", "ray.scripts.scripts"]


@dataclass(frozen=True)
class RayHead:
    address: str  # "127.0.0.1:PORT"
    pid: int  # of the `ray start --block` process: the root of the head's process tree
    env: dict[str, str]  # the environment a driver connects with (RAY_AUTH_MODE=token: it sends the head's token)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def ray_head(cpus: int = 2, start_timeout_s: float = 120.0) -> Iterator[RayHead]:
    """A fresh Ray head on this machine with ``cpus`` CPUs, workers at nice 0, token authentication as ``ray
    start`` sets it up; stopped (its whole process group) on exit. Raises RuntimeError if it does not answer
    ``ray status`` within ``start_timeout_s``."""
    port = _free_port()
    env = os.environ | {"RAY_AUTH_MODE": "token", "RAY_worker_niceness": "0", "RAY_prestart_worker_first_driver": "0",
                        "OMP_NUM_THREADS": "1"}
    head = subprocess.Popen([*RAY_CLI, "start", "--head", "--block", f"--port={port}", "--node-ip-address=127.0.0.1",
                             f"--num-cpus={cpus}", "--num-gpus=0", "--include-dashboard=false",
                             "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout_s
        while subprocess.run([*RAY_CLI, "status", f"--address={address}"], capture_output=True, env=env,
                             check=False).returncode != 0:
            if head.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head on {address} did not start")
            time.sleep(1)
        yield RayHead(address, head.pid, env)
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
