"""When a parallel map runs serially: ParallelProbe's decision from fake measurements (no
timed assertions), and the map following it on a fake clock, with the serial map as the
oracle for values, order, errors and resume."""

from __future__ import annotations

import functools
import threading

import pytest

from trainctl.data import AUTOTUNE, Dataset
from trainctl.data.overlap import ParallelProbe
from trainctl.data.parallel import Map
from trainctl.errors import DataError


def _map_threads() -> int:
    return sum(t.name.startswith("trainctl-map") and t.is_alive() for t in threading.enumerate())


def test_serial_window_leaves_out_the_first_block_and_needs_two_calls():
    probe = ParallelProbe(2, serial_window=0.01)
    assert not probe.serial_block(5.0, 1)          # warm-up block: not counted
    assert probe.cost == 0.0
    assert not probe.serial_block(0.004, 2)        # 4 ms timed < 10 ms
    assert probe.serial_block(0.008, 4)            # 12 ms >= 10 ms
    assert probe.cost == pytest.approx(0.002)      # 12 ms / 6 elements
    probe = ParallelProbe(2, serial_window=0.0)
    probe.serial_block(1.0, 1)
    assert not probe.serial_block(1.0, 1)          # one timed call is not enough


def test_cheap_elements_stay_serial_with_a_reason():
    cheap = ParallelProbe(2, serial_window=0.0)
    cheap.serial_block(1.0, 1)
    cheap.serial_block(1e-5, 2)
    assert cheap.stay_serial() and cheap.verdict() is False
    assert cheap.reason == "5.0 µs of work per element is below 20 µs, too little to share between threads"
    dear = ParallelProbe(2, serial_window=0.0)
    dear.serial_block(1.0, 1)
    dear.serial_block(2e-4, 2)
    assert not dear.stay_serial() and dear.reason is None and dear.verdict() is None


def _probe(cost: float, workers: int = 2) -> ParallelProbe:
    probe = ParallelProbe(workers, serial_window=0.0, parallel_window=0.05)
    probe.serial_block(1.0, 1)
    probe.serial_block(2 * cost, 2)
    return probe


def test_threads_that_overlap_are_kept():
    probe = _probe(0.001)                          # 1 ms per element serially
    for k in range(2):                             # two workers, each 10 elements in 10 ms, together
        probe.record_chunk(k * 0.01, (k + 1) * 0.01, 10)
        probe.record_chunk(k * 0.01, (k + 1) * 0.01, 10)
    assert probe.verdict() is None                 # 20 ms busy < the 50 ms window
    for k in range(2, 5):
        probe.record_chunk(k * 0.01, (k + 1) * 0.01, 10)
        probe.record_chunk(k * 0.01 + 0.002, (k + 1) * 0.01 + 0.002, 10)
    assert probe.busy() == pytest.approx((0.052, 100, 10))
    assert probe.verdict() is True
    assert probe.speedup == pytest.approx(100 * 0.001 / 0.052)   # 1.92x
    assert probe.reason is None


def test_threads_that_hold_the_gil_fall_back_with_a_reason():
    probe = _probe(0.001)
    for k in range(3):                             # both busy 20 ms for 10 elements each: no overlap
        probe.record_chunk(k * 0.02, (k + 1) * 0.02, 10)
        probe.record_chunk(k * 0.02, (k + 1) * 0.02, 10)
    assert probe.verdict() is False
    assert probe.speedup == pytest.approx(1.0)
    assert probe.reason == ("2 threads ran the first 60 elements at 1.00x the serial speed (below "
                            "1.2x: the function holds the GIL or no CPU is idle)")
    probe.record_chunk(1.0, 1.0001, 100)           # decided once: later chunks change nothing
    assert probe.verdict() is False and probe.busy()[1] == 60


def test_time_the_workers_wait_for_the_consumer_does_not_count():
    probe = _probe(0.001)
    for k in range(3):                             # 10 ms of overlapped work, then 1 s idle
        probe.record_chunk(k * 1.0, k * 1.0 + 0.01, 10)
        probe.record_chunk(k * 1.0, k * 1.0 + 0.01, 10)
    assert probe.verdict() is None                 # 30 ms busy, not 2 s
    probe.record_chunk(3.0, 3.03, 30)
    probe.record_chunk(3.0, 3.03, 30)
    assert probe.busy() == pytest.approx((0.06, 120, 8))
    assert probe.verdict() is True and probe.speedup == pytest.approx(2.0)


def test_a_single_span_covering_others_is_counted_once():
    probe = _probe(0.001)
    spans = [(0.0, 0.06, 30), (0.01, 0.02, 5), (0.02, 0.03, 5), (0.05, 0.07, 10)]
    for span in spans:
        probe.record_chunk(*span)
    assert probe.busy() == pytest.approx((0.07, 50, 4))


class SharedClock:
    """A fake clock that ``fn`` advances by its made-up cost: one timeline for all
    threads, so the threads' work never overlaps (a function that holds the GIL)."""

    def __init__(self):
        self.now, self.lock = 0.0, threading.Lock()

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def _fake_clock_map(monkeypatch, cost: float, n: int, fail_at: int | None = None):
    clock, threads = SharedClock(), {}
    monkeypatch.setattr(Map, "probe_type", functools.partial(ParallelProbe, clock=clock))

    def work(v):
        threads[int(v)] = threading.current_thread().name
        clock.spend(cost)
        if int(v) == fail_at:
            raise ValueError("bad element")
        return v * 3

    ds = Dataset.range(n).map(work, num_parallel_calls=2)
    return ds, threads


def test_cheap_work_never_starts_a_thread(monkeypatch):
    ds, threads = _fake_clock_map(monkeypatch, cost=5e-6, n=6000)   # 5 µs a call, made up
    assert [int(v) for v in ds.iterate(0)] == [3 * v for v in range(6000)]
    assert set(threads.values()) == {threading.current_thread().name}
    assert "5.0 µs of work per element is below 20 µs" in ds.serial_reason


def test_work_that_holds_the_gil_falls_back_to_serial_keeping_order_errors_and_resume(monkeypatch):
    ds, threads = _fake_clock_map(monkeypatch, cost=1e-3, n=1000)
    assert [int(v) for v in ds.iterate(1)] == [3 * v for v in range(1000)]
    assert any(t.startswith("trainctl-map") for t in threads.values())   # threads were tried
    assert threads[999] == threading.current_thread().name            # and left
    assert ds.serial_reason.startswith("2 threads ran the first ")
    assert "x the serial speed (below 1.2x" in ds.serial_reason
    assert _map_threads() == 0
    it = ds.iterator(1)
    head = [int(next(it)) for _ in range(700)]                       # past the fall-back
    state = it.state()
    it.close()
    assert head + [int(v) for v in ds.iterator_from_state(state)] == [3 * v for v in range(1000)]
    failing, _ = _fake_clock_map(monkeypatch, cost=1e-3, n=1000, fail_at=900)
    got = []
    with pytest.raises(DataError, match=r"map: element 900 \(epoch 0\): ValueError: bad element"):
        for v in failing.iterate(0):
            got.append(int(v))
    assert got == [3 * v for v in range(900)] and _map_threads() == 0


def test_threads_are_tried_again_after_a_second_of_serial_work(monkeypatch):
    ds, threads = _fake_clock_map(monkeypatch, cost=1e-3, n=2000)   # 1 ms a call, made up
    assert [int(v) for v in ds.iterate(0)] == [3 * v for v in range(2000)]
    main = threading.current_thread().name
    ran = [threads[v] != main for v in range(2000)]
    assert not any(ran[:21]) and any(ran[21:200])                     # probed, tried, fell back
    assert not any(ran[200:1000])                                     # serial for 1 s
    assert any(ran[1000:1300]) and not any(ran[1500:])                # tried again, fell back
    assert ds.serial_reason.startswith("2 threads ran the first ") and _map_threads() == 0


def test_the_serial_stretch_carries_over_to_the_next_epochs(monkeypatch):
    ds, threads = _fake_clock_map(monkeypatch, cost=1e-3, n=300)    # fell back at ~90: 1 s to go
    main = threading.current_thread().name
    ran = []
    for epoch in range(4):
        threads.clear()
        assert [int(v) for v in ds.iterate(epoch)] == [3 * v for v in range(300)]
        ran.append([threads[v] != main for v in range(300)])
        assert ds.serial_reason.startswith("2 threads ran the first ")
    assert any(ran[0]) and not any(ran[1]) and not any(ran[2])      # no probe: 210 + 600 ms
    assert not any(ran[3][:180]) and any(ran[3][190:])               # 190 ms left, then a probe
    assert _map_threads() == 0


def test_short_iteration_stays_serial_and_says_so():
    ds = Dataset.range(10).map(lambda v: v + 1, num_parallel_calls=AUTOTUNE)
    assert [int(v) for v in ds.iterate(0)] == list(range(1, 11))
    assert ds.serial_reason.startswith("the iteration ended after 10 elements")
    assert Dataset.range(10).map(lambda v: v + 1).serial_reason is None       # serial by request


def test_data_bench_notes_a_map_that_ran_serially(monkeypatch):
    from trainctl.data.report import bench_stages

    ds, _ = _fake_clock_map(monkeypatch, cost=5e-6, n=6000)
    rates = bench_stages(ds.batch(100), seconds=60)
    assert [r.serial_reason is not None for r in rates] == [False, True, False]
    assert "below 20 µs" in rates[1].serial_reason
    assert rates[1].samples == 6000
