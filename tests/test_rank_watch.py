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
time.sleep(30)  # stuck in a collective
"""
    # the script sleeps 30 s and would then exit 0: exit 1 means the watch ended it first
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert re.search(r"error: rank 0: step 42 has run \d+ s: rank 1 stopped", result.stderr), result.stderr
