"""Which rank of a data-parallel job stopped, so that the others stop too and say so.

Every rank beats a counter of its own (`propeller/heartbeat/RANK`) in the key-value store that
`paddle.distributed.launch` sets up for the job (a TCP store hosted by rank 0's process), once a
`interval` seconds, from a thread. When a rank dies, what the others see depends on the
transport: gloo (CPU) fails the next collective at once with a bare `RuntimeError:
std::exception`; NCCL (GPU) can block in it for a long time. Both cases end here:

- a failed step is explained by `failure_message`: the ranks whose counters stopped moving, or
  rank 0 when the store itself is gone with its host;
- a step that runs longer than `step_timeout` seconds makes the watch thread print the same
  explanation and end the process (exit code 1), since the main thread is stuck inside Paddle.
  The time between steps (the hooks: rank 0 evaluates, writes checkpoints and models) is not a
  step's: the other ranks wait for it in their next step's first collective, and while a rank
  that is still beating has started fewer steps than this one, this one's step is not counted
  as stuck.

On one node the launcher also stops the job's other processes a few seconds after one of them
exits; across nodes only the ranks themselves can notice. Knows nothing about ERNIE.

The watch talks to the store over a connection of its own (`job_store`). Paddle's global store
connection also serves NCCL, which builds its communicator at the first collective: every rank
but 0 then waits in `store.get` for rank 0's id, and Paddle's client has no lock around its
socket, so a beat sent through it from this thread meanwhile garbles that exchange ("Stop_waiting
response is expected"). Gloo (the CPU) builds its communicator at start and never showed it.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from typing import List, Optional

from .learner import Hook

KEY = "propeller/heartbeat/{}"
STARTED = "propeller/started/{}"  # the steps a rank has started in this job


def master_endpoint() -> tuple:
    """(host, port) of the job's store, found as Paddle finds it: PADDLE_MASTER, else the first of
    PADDLE_TRAINER_ENDPOINTS (paddle/phi/core/distributed/store/store_utils.cc)."""
    endpoint = os.environ.get("PADDLE_MASTER") or os.environ.get("PADDLE_TRAINER_ENDPOINTS", "").split(",")[0]
    host, _, port = endpoint.rpartition(":")
    if not host or not port.isdigit():
        raise RuntimeError("neither PADDLE_MASTER nor PADDLE_TRAINER_ENDPOINTS names the job's store "
                           "(run under python -m paddle.distributed.launch)")
    return host, int(port)


def job_store(timeout: int = 900):
    """A client connection of this process's own to the job's TCP store. Made after Paddle's global
    store (whose creation on rank 0 starts the server); as a client of 0 workers it skips the
    start-up count of workers that Paddle's own connections take part in."""
    from paddle.base import core
    core.create_or_get_global_tcp_store()
    host, port = master_endpoint()
    return core.TCPStore(host, port, False, 0, timeout)


class RankWatch(Hook):
    def __init__(self, rank: int, world_size: int, interval: float = 0.5, step_timeout: float = 600.0,
                 store=None):
        if store is None:
            store = job_store()
        self.rank, self.world_size = rank, world_size
        self.interval, self.step_timeout = interval, step_timeout
        self._store, self._lock = store, threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        # the steps done, and when the step under way started (None between steps)
        self.step, self.step_started = 0, None
        self.closing = False  # in the run's collectives after its last step (`begin_closing`)

    # ---- the store ------------------------------------------------------------------------
    def _counters(self, key: str = KEY) -> Optional[List[int]]:
        """Every rank's counter `key`, or None when the store cannot be reached."""
        try:
            with self._lock:
                return [int(self._store.add(key.format(r), 0)) for r in range(self.world_size)]
        except Exception:  # the store's host is gone: whatever the binding raises, the answer is the same
            return None

    def _count(self, key: str = KEY) -> bool:
        try:
            with self._lock:
                self._store.add(key.format(self.rank), 1)
            return True
        except Exception:
            return False

    def _beat(self) -> bool:
        return self._count(KEY)

    def behind(self) -> List[int]:
        """The ranks that have started fewer steps than this one: still busy between steps."""
        started = self._counters(STARTED)
        return [] if started is None else [r for r in range(self.world_size) if started[r] < started[self.rank]]

    def stopped_ranks(self, wait: Optional[float] = None) -> Optional[List[int]]:
        """The other ranks whose counter did not move in `wait` seconds (default: 3 beats);
        None when the store is unreachable, which means rank 0, its host, is gone. This rank beats
        meanwhile: ranks that fail together look together, and each must see the others alive."""
        first = self._counters()
        if first is None:
            return None
        deadline = time.monotonic() + (3 * self.interval if wait is None else wait)
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(self.interval, left))
            self._beat()
        second = self._counters()
        if second is None:
            return None
        return [r for r in range(self.world_size) if r != self.rank and first[r] == second[r]]

    def failure_message(self, what: str) -> str:
        stopped = self.stopped_ranks()
        if stopped is None:
            who = "rank 0 stopped (the job's store, which it hosts, is unreachable)"
        elif stopped:
            who = f"rank{'s' if len(stopped) > 1 else ''} {', '.join(map(str, stopped))} stopped " \
                  f"(no heartbeat for {3 * self.interval:g} s)"
        else:
            who = "every other rank is still alive"
        return f"rank {self.rank}: {what}: {who}; see the other ranks' logs, then resume from the last checkpoint"

    # ---- the hook -------------------------------------------------------------------------
    def before_train(self, learner, start: int) -> None:
        self.step, self.step_started = start, None
        self._beat()
        self._thread = threading.Thread(target=self._run, name="rank-watch", daemon=True)
        self._thread.start()

    def before_step(self, learner, step: int) -> None:
        self.step, self.step_started = step, time.monotonic()
        self._count(STARTED)

    def after_step(self, learner, step: int, metrics, info) -> None:
        self.step, self.step_started = step, None

    def begin_closing(self) -> None:
        """What follows the last step (the trainer's last checks, collectives too) is watched as a
        step is, until `close`: a rank that stops there is named, a hang ends the process."""
        self.closing = True
        self.before_step(None, self.step)

    def doing(self) -> str:
        """What this rank is doing, for a message: `step 42`, or the check after the last step."""
        return f"the check after step {self.step}" if self.closing else f"step {self.step + 1}"

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        excused = (None, 0.0)  # a step's start, and the time its wait counts from since others were behind
        while not self._stop.wait(self.interval):
            self._beat()
            started = self.step_started
            if started is None:
                continue
            since = excused[1] if excused[0] == started else started
            if time.monotonic() - since <= self.step_timeout:
                continue
            behind = self.behind()
            if behind:
                stopped = self.stopped_ranks()
                if stopped is not None and not set(behind) & set(stopped):  # alive, busy between steps
                    excused = (started, time.monotonic())
                    continue
            stuck = time.monotonic() - started
            print(f"error: {self.failure_message(f'{self.doing()} has run {stuck:.0f} s')}",
                  file=sys.stderr, flush=True)
            os._exit(1)
