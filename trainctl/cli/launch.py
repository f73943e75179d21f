"""``trainctl train SPEC --nproc N``: start N local processes of the same command, as
torchrun does on one machine, and tear the job down when one of them fails.

Each child runs ``python -m trainctl train ...`` (the same options, without ``--nproc``)
with torchrun's environment: ``RANK`` = ``LOCAL_RANK`` = i, ``WORLD_SIZE`` =
``LOCAL_WORLD_SIZE`` = N, ``MASTER_ADDR`` = 127.0.0.1 and a free ``MASTER_PORT``. The
launcher waits; when a child exits with a non-zero code (or is killed), it prints which
rank failed, gives the others ``SELF_EXIT_S`` seconds to stop on their own (their
collectives fail at once when a peer's connection closes), then sends SIGTERM, SIGKILL
after ``GRACE_S`` seconds more (a rank hung in a collective), and exits
with that child's code (1 for a child killed by a signal). SIGINT/SIGTERM given to the
launcher are passed on to every child; after one, a rank exiting is the job stopping as
asked, not a failure: no error line, the others get the same ``SELF_EXIT_S``/``GRACE_S``
to stop, and the launcher exits 128 + the signal number (rank 0 prints the resume hint).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

from trainctl.cli.common import err

SELF_EXIT_S = 5.0
GRACE_S = 10.0
POLL_S = 0.1
RUN_ID = "trainctl"  # TORCHELASTIC_RUN_ID of the ranks this launcher starts


def launched_nproc(world) -> list[str]:
    """``["--nproc", N]`` in a rank this launcher started (its resume hint repeats it);
    ``[]`` under torchrun."""
    return ["--nproc", str(world.size)] if os.environ.get("TORCHELASTIC_RUN_ID") == RUN_ID else []


def free_port() -> int:
    """A TCP port on the loopback interface that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch(nproc: int, args: list[str]) -> int:
    """Run ``python -m trainctl train *args`` as ranks 0..nproc-1; returns the exit code."""
    port = str(free_port())
    children = []
    for rank in range(nproc):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank),
               "WORLD_SIZE": str(nproc), "LOCAL_WORLD_SIZE": str(nproc),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "TORCHELASTIC_RUN_ID": RUN_ID}
        children.append(subprocess.Popen([sys.executable, "-m", "trainctl", "train", *args],
                                         env=env))

    stop_signal: list[tuple[int, float]] = []  # (signal, when) given to the launcher

    def forward(signum, frame):
        stop_signal.append((signum, time.monotonic()))
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _watch(children, stop_signal)
    finally:
        for s, old in previous.items():
            signal.signal(s, old)


def _watch(children: list[subprocess.Popen], stop_signal: list[tuple[int, float]]) -> int:
    while True:
        codes = [c.poll() for c in children]
        if all(code == 0 for code in codes):
            return 0
        failed = [(rank, code) for rank, code in enumerate(codes) if code not in (None, 0)]
        if stop_signal and (failed or time.monotonic() - stop_signal[0][1] > SELF_EXIT_S):
            _stop(children)  # asked to stop: the ranks' own messages say how it ended
            return 128 + stop_signal[0][0]
        if failed:
            rank, code = failed[0]
            err.print(f"error: rank {rank} of {len(children)} {_how(code)}; stopping the other "
                      f"ranks", markup=False)
            _stop(children)
            return code if code > 0 else 1
        time.sleep(POLL_S)


def _how(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


def _stop(children: list[subprocess.Popen]) -> None:
    """Let the others notice the lost peer and exit by themselves (records written) for
    ``SELF_EXIT_S``; then SIGTERM, and SIGKILL after ``GRACE_S`` more."""
    deadline = time.monotonic() + SELF_EXIT_S
    while time.monotonic() < deadline and any(c.poll() is None for c in children):
        time.sleep(POLL_S)
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + GRACE_S
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
