"""The rank watch on an in-memory store shared by threads standing in for ranks: a rank that
stops beating is named, a lost store means rank 0, and a stuck step ends the process."""
import re
import subprocess
import sys
import threading

from propeller.rank_watch import RankWatch
from tests.conftest import REPO


class MemoryStore:
    """The one method of Paddle's TCP store the watch uses: add(key, n) -> the new value."""

    def __init__(self):
        self.values, self.lock, self.broken = {}, threading.Lock(), False

    def add(self, key, n):
        if self.broken:
            raise RuntimeError("Connection reset by peer")
        with self.lock:
            self.values[key] = self.values.get(key, 0) + n
            return self.values[key]


def test_a_rank_that_stops_beating_is_named():
    store = MemoryStore()
    watches = [RankWatch(r, 3, interval=0.05, store=store) for r in range(3)]
    for watch in watches:
        watch.before_train(None, 0)
    try:
        assert watches[0].stopped_ranks() == []
        watches[2].close()  # rank 2 dies
        assert watches[0].stopped_ranks() == [2] and watches[1].stopped_ranks() == [2]
        message = watches[0].failure_message("step 7 failed (std::exception)")
        assert message.startswith("rank 0: step 7 failed (std::exception): rank 2 stopped")
    finally:
        for watch in watches:
            watch.close()


def test_ranks_that_fail_together_name_only_the_rank_that_stopped():
    """Three ranks, rank 2 dead: gloo fails the next collective on ranks 0 and 1 at once, and each
    looks for the stopped ranks while the other does: neither may take the other for stopped."""
    from ernie.pretrain.trainer import TrainingFailed, run_watched
    store = MemoryStore()
    watches = [RankWatch(r, 3, interval=0.05, store=store) for r in range(3)]
    for watch in watches:
        watch.before_train(None, 4)
    watches[2].close()
    together, messages = threading.Barrier(2), {}

    def rank(r):
        def step():
            together.wait()
            raise RuntimeError("std::exception")
        try:
            run_watched(step, watches[r])
        except TrainingFailed as err:
            messages[r] = str(err)
    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(messages) == [0, 1]
    for r, message in messages.items():
        assert message.startswith(f"rank {r}: step 5 failed (std::exception): rank 2 stopped"), message


def test_a_lost_store_means_rank_0_stopped():
    store = MemoryStore()
    watch = RankWatch(1, 2, interval=0.05, store=store)
    watch.before_train(None, 0)
    store.broken = True
    try:
        assert watch.stopped_ranks() is None
        assert "rank 0 stopped (the job's store, which it hosts, is unreachable)" in watch.failure_message("x")
    finally:
        watch.close()


def test_a_stuck_step_ends_the_process_naming_the_rank_that_stopped():
    script = f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
from tests.test_rank_watch import MemoryStore
from propeller.rank_watch import RankWatch
store = MemoryStore()
store.add("propeller/heartbeat/1", 5)  # rank 1 beat, then died
watch = RankWatch(0, 2, interval=0.05, step_timeout=0.5, store=store)
watch.before_train(None, 41)
watch.before_step(None, 41)
time.sleep(30)  # stuck in a collective
"""
    # the script sleeps 30 s and would then exit 0: exit 1 means the watch ended it first
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert re.search(r"error: rank 0: step 42 has run \d+ s: rank 1 stopped", result.stderr), result.stderr


def test_a_rank_that_stops_in_the_check_after_the_last_step_is_named():
    """After its last step a rank checks with the others that their parameters agree (a
    collective): the watch stays on there, so a rank that dies meanwhile, leaving the others in
    the collective (NCCL blocks), is named and the process ends, as in a step."""
    script = f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
from tests.test_rank_watch import MemoryStore
from propeller.rank_watch import RankWatch
store = MemoryStore()
store.add("propeller/heartbeat/1", 5)  # rank 1 beat, then died
watch = RankWatch(0, 2, interval=0.05, step_timeout=0.5, store=store)
watch.before_train(None, 41)  # as the learner calls it: the last step, 42, then the end of training
watch.before_step(None, 41)
watch.after_step(None, 42, {{}}, {{}})
watch.after_train(None)
watch.begin_closing()
time.sleep(30)  # stuck in the check's collective
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stderr[-2000:]
    assert re.search(r"error: rank 0: the check after step 42 has run \d+ s: rank 1 stopped", result.stderr), \
        result.stderr


def test_a_rank_busy_between_steps_is_waited_for_and_a_step_stuck_on_every_rank_is_not(monkeypatch, capsys):
    """Rank 0 evaluates or writes between steps while rank 1 waits in its next step's first
    collective: rank 1's step is not stuck while rank 0, beating, has started fewer steps. Once
    both have started the step, the timeout holds again."""
    import os
    import time
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    store = MemoryStore()
    watches = [RankWatch(r, 2, interval=0.02, step_timeout=0.2, store=store) for r in range(2)]
    for watch in watches:
        watch.before_train(None, 4)
    try:
        watches[1].before_step(None, 4)
        time.sleep(1.0)  # five timeouts
        assert exits == []
        watches[0].before_step(None, 4)  # both in step 5, which now hangs
        deadline, err = time.monotonic() + 10, ""
        while "rank 0: step 5 has run" not in err or "rank 1: step 5 has run" not in err:
            assert time.monotonic() < deadline, f"the hung step was not caught: {err}"
            time.sleep(0.05)
            err += capsys.readouterr().err
        assert set(exits) == {1} and "every other rank is still alive" in err
    finally:
        for watch in watches:
            watch.close()


RANK_1 = """
import os, sys
sys.path.insert(0, {repo!r})
from paddle.base import core
from propeller.rank_watch import RankWatch
watch = RankWatch(1, 2, interval=0.005)  # its own connection to the job's store
watch.before_train(None, 0)
# what NCCL does at its first collective on every rank but 0: wait for rank 0's id on the
# global connection while the watch beats
value = core.create_or_get_global_tcp_store().get("nccl_id")
watch.close()
print("got", bytes(value).decode(), flush=True)
"""


def test_the_watch_beats_on_a_connection_of_its_own_while_the_main_thread_waits_in_the_store(tmp_path):
    """With the watch on Paddle's global connection, the child's `get` fails ("Stop_waiting
    response is expected") or hangs: the two threads' commands interleave on one socket."""
    import socket
    import time

    from paddle.base import core
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**__import__("os").environ, "PADDLE_MASTER": f"127.0.0.1:{port}", "PADDLE_TRAINER_ID": "1",
           "PADDLE_TRAINERS_NUM": "2", "OMP_NUM_THREADS": "1"}
    child = subprocess.Popen([sys.executable, "-c", RANK_1.format(repo=str(REPO))], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    master = core.TCPStore("127.0.0.1", port, True, 2, 60)  # rank 0's store; returns when rank 1 is in
    time.sleep(1.0)  # rank 0 busy elsewhere (its held-out evaluation) while rank 1 waits and beats
    master.set("nccl_id", "abc")
    try:
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == 0 and "got abc" in out, err[-2000:]
    assert master.add("propeller/heartbeat/1", 0) > 10  # it beat meanwhile


def test_a_step_failing_as_nccl_or_paddle_enforce_fails_it_becomes_an_error_naming_the_stopped_rank():
    """Paddle raises a failed NCCL call as OSError and an InvalidArgument as ValueError, not only
    gloo's RuntimeError: each becomes TrainingFailed naming rank 1, the watch's thread stopped; a
    failed allocation (MemoryError) too, saying what fits the batch in less memory."""
    import pytest

    from ernie.pretrain.trainer import TrainingFailed, run_watched
    for error in (OSError("NCCL error: unhandled system error"), ValueError("(InvalidArgument) x"),
                  RuntimeError("std::exception")):
        watch = RankWatch(0, 2, interval=0.02, store=MemoryStore())  # rank 1 never beats
        watch.before_train(None, 4)

        def step():
            raise error
        with pytest.raises(TrainingFailed, match=r"^rank 0: step 5 failed \(.+\): rank 1 stopped"):
            run_watched(step, watch)
        assert watch._thread is None and not any(t.name == "rank-watch" for t in threading.enumerate())
    error = OSError("NCCL error")
    with pytest.raises(OSError):  # one process: no watch, the error as it is
        run_watched(step, None)

    error = MemoryError("(ResourceExhausted) Out of memory error on GPU 3")  # as Paddle raises it
    with pytest.raises(TrainingFailed, match=r"^rank 0: step 5 failed, out of memory: .*max_tokens_per_device.*"
                                             r"\(\(ResourceExhausted\) Out of memory error on GPU 3\): rank 1 stopped"):
        run_watched(step, watch)
    with pytest.raises(TrainingFailed, match=r"^out of memory: .*recompute: true"):  # one process: its one line too
        run_watched(step, None)

    from data_gen.shards import ShardError
    for error in (ShardError("part-00001.shard: block 3 fails its checksum"), KeyboardInterrupt()):
        watch = RankWatch(0, 2, interval=0.02, store=MemoryStore())
        watch.before_train(None, 4)
        with pytest.raises(type(error)):  # this rank's own data: its own one-line error, not a stopped rank
            run_watched(step, watch)
        assert watch._thread is None  # stopped all the same
