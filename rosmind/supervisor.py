"""Run the nodes of a ``LaunchPlan`` as processes and stop them the way ``ros2 launch`` does.

Contract of ``Supervisor(plan, env).run() -> exit code``:

- every node is its own process (its own process group, so a terminal's Ctrl-C reaches only
  the launcher, which forwards it), started in file order with ``env`` + the node's env;
- output lines are prefixed ``[label] ``; ``output: screen`` shows stdout and stderr,
  ``log`` writes both to ``<log_dir>/<label>.log`` and shows stderr, ``both`` does both;
- SIGINT/SIGTERM to the launcher (or ``request_stop()``) stops every node: SIGINT, then after
  ``grace_s`` SIGTERM, then after ``term_s`` SIGKILL. A second signal skips to the next step.
  rosmind's nodes end themselves inside the grace even when their teardown hangs
  (``rosmind_ros.params.STOP_DEADLINE_S``: a stack dump, exit 1);
- a node that exits nonzero (or is killed by a signal) on its own is reported by name and
  code ("node 'policy_node' died with exit code 3"), the others are stopped, result 1;
- a node with ``on_exit: shutdown`` that exits 0 stops the others, result 0;
- when all nodes have exited on their own with 0, result 0. A stop that needed SIGTERM or
  SIGKILL for some node is reported and gives 1.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from rosmind.launch import LaunchPlan, NodeSpec

_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the launcher dies (PR_SET_PDEATHSIG), so a
    killed launcher leaves no orphan nodes. Runs before any reader thread exists (see run)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)


def default_log_dir() -> Path:
    base = os.environ.get("ROS_LOG_DIR") or Path(
        os.environ.get("ROS_HOME", Path.home() / ".ros")) / "log"
    return Path(base) / f"rosmind-launch-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"


@dataclass
class _Proc:
    spec: NodeSpec
    popen: subprocess.Popen
    threads: list[threading.Thread] = field(default_factory=list)
    log: IO[str] | None = None
    stopped_with: str = ""  # the strongest signal we sent


class Supervisor:
    """Runs one plan once. ``out`` receives all prefixed lines (default ``sys.stdout``)."""

    def __init__(self, plan: LaunchPlan, env: Mapping[str, str], *, grace_s: float = 5.0,
                 term_s: float = 2.0, out: IO[str] | None = None, log_dir: Path | None = None,
                 python: str = sys.executable):
        self.plan, self.env = plan, dict(env)
        self.grace_s, self.term_s = grace_s, term_s
        self.out = out or sys.stdout
        self.log_dir = log_dir
        self.python = python
        self.procs: list[_Proc] = []
        self._lock = threading.Lock()
        self._signals = 0
        self._stop_reason = ""

    def say(self, label: str, text: str) -> None:
        with self._lock:
            self.out.write(f"[{label}] {text}\n")
            self.out.flush()

    def request_stop(self, *_: object) -> None:
        """Begin (or, called again, hurry) the shutdown; safe from a signal handler."""
        self._signals += 1

    def _pump(self, p: _Proc, stream: IO[bytes], show: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if p.log is not None:
                with self._lock:
                    p.log.write(line + "\n")
                    p.log.flush()
            if show:
                self.say(p.spec.label, line)
        stream.close()

    def _start(self, spec: NodeSpec) -> _Proc:
        env = dict(self.env)
        env.update(spec.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        log = None
        if spec.output in ("log", "both"):
            if self.log_dir is None or not self.log_dir.is_dir():
                self.log_dir = self.log_dir or default_log_dir()
                self.log_dir.mkdir(parents=True, exist_ok=True)
                self.say("launch", f"node output (output: log) goes to {self.log_dir}/")
            log = open(self.log_dir / f"{spec.label}.log", "a", encoding="utf-8")
        popen = subprocess.Popen(spec.argv(self.python), env=env, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 process_group=0, preexec_fn=_die_with_parent)
        return _Proc(spec, popen, log=log)

    def _start_pumps(self, p: _Proc) -> None:
        popen = p.popen
        for stream, show in ((popen.stdout, p.spec.output != "log"), (popen.stderr, True)):
            t = threading.Thread(target=self._pump, args=(p, stream, show), daemon=True)
            t.start()
            p.threads.append(t)
        self.say("launch", f"started {p.spec.label!r} (pid {popen.pid}): {p.spec.module}")

    def _signal(self, p: _Proc, sig: signal.Signals) -> None:
        if p.popen.poll() is None:
            p.stopped_with = sig.name
            try:
                os.killpg(p.popen.pid, sig)
            except ProcessLookupError:
                pass

    def _alive(self) -> list[_Proc]:
        return [p for p in self.procs if p.popen.poll() is None]

    def _stop_all(self) -> bool:
        """SIGINT -> SIGTERM -> SIGKILL; True when every node stopped after SIGINT alone."""
        steps = ((signal.SIGINT, self.grace_s), (signal.SIGTERM, self.term_s),
                 (signal.SIGKILL, 5.0))
        level = self._signals
        clean = True
        for i, (sig, wait_s) in enumerate(steps):
            alive = self._alive()
            if not alive:
                break
            if i > 0:
                clean = False
                names = ", ".join(repr(p.spec.label) for p in alive)
                self.say("launch", f"{names} still running; sending {sig.name}")
            for p in alive:
                self._signal(p, sig)
            deadline = time.monotonic() + wait_s
            while self._alive() and time.monotonic() < deadline:
                if self._signals > level:  # another Ctrl-C: go to the next step now
                    level = self._signals
                    break
                time.sleep(0.02)
        return clean

    def run(self) -> int:
        in_main = threading.current_thread() is threading.main_thread()
        old = {}
        if in_main:
            old = {s: signal.signal(s, self.request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        code = 0
        try:
            # All forks happen before the first reader thread starts (preexec_fn is only safe
            # without other threads); the pipes buffer what nodes print meanwhile.
            for spec in self.plan.nodes:
                if self._signals:
                    break
                self.procs.append(self._start(spec))
            for p in self.procs:
                self._start_pumps(p)
            code = self._watch()
            if not self._stop_all():
                code = code or 1
        finally:
            for p in self.procs:  # only reached with live nodes if something above raised
                self._signal(p, signal.SIGKILL)
                p.popen.wait()
            for p in self.procs:
                for t in p.threads:
                    t.join(timeout=2.0)
                if p.log is not None:
                    p.log.close()
            for s, h in old.items():
                signal.signal(s, h)
        return code

    def _watch(self) -> int:
        """Wait until a stop is needed; return the launch's exit code so far."""
        reported: set[int] = set()
        while not self._signals:
            for p in self.procs:
                rc = p.popen.poll()
                if rc is None or id(p) in reported:
                    continue
                reported.add(id(p))
                if rc != 0:
                    how = (f"was killed by {signal.Signals(-rc).name}" if rc < 0
                           else f"died with exit code {rc}")
                    self.say("launch", f"node {p.spec.label!r} {how}; stopping the other nodes")
                    return 1
                if p.spec.on_exit == "shutdown":
                    self.say("launch", f"node {p.spec.label!r} exited (on_exit: shutdown); "
                             "stopping the other nodes")
                    return 0
                self.say("launch", f"node {p.spec.label!r} exited with code 0")
            if len(reported) == len(self.procs):
                return 0
            time.sleep(0.05)
        self.say("launch", "stop requested; sending SIGINT to all nodes")
        return 0
