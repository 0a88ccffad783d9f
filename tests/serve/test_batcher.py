"""The Batcher alone (no model, no HTTP): batching of concurrent requests, order, isolation of a failing
request, the queue bound, time-outs and shutdown."""

import threading
import time

import pytest

from paddle_binbert.serve import Batcher, BatcherClosed, QueueFull


class Recorder:
    """predict(items) -> [item.upper()], recording the batches; fails on items containing 'bad';
    waits for ``gate`` (when set) before answering."""

    def __init__(self, gate=None):
        self.batches = []
        self.gate = gate

    def __call__(self, items):
        if self.gate is not None:
            assert self.gate.wait(10)
        self.batches.append(list(items))
        if any("bad" in item for item in items):
            raise ValueError("bad input")
        return [item.upper() for item in items]


def test_concurrent_requests_are_batched_and_answered_in_order():
    rec = Recorder()
    batcher = Batcher(rec, max_batch_size=6, max_wait_ms=2000)
    try:
        futures = [batcher.submit([f"r{i}a", f"r{i}b"]) for i in range(3)]  # 6 items: one full batch
        assert [f.result(10) for f in futures] == [[f"R{i}A", f"R{i}B"] for i in range(3)]
        assert rec.batches == [["r0a", "r0b", "r1a", "r1b", "r2a", "r2b"]]
        stats = batcher.stats()
        assert stats["batches"] == 1 and stats["items"] == 6 and stats["requests"] == 3
        assert stats["batch_items_max"] == 6 and stats["mean_batch_items"] == 6.0
    finally:
        batcher.stop()


def test_whole_requests_fill_batches_and_large_requests_run_alone():
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = Batcher(rec, max_batch_size=4, max_wait_ms=0)
    try:
        first = batcher.submit(["x"])  # taken by the worker, which waits for the gate
        time.sleep(0.2)
        sizes = [3, 2, 7, 1, 1]
        futures = [batcher.submit([f"{n}-{j}" for j in range(n)]) for n in sizes]
        gate.set()
        assert first.result(10) == ["X"]
        for n, future in zip(sizes, futures):
            assert future.result(10) == [f"{n}-{j}" for j in range(n)]
        # arrival order kept; a request never split; 2 does not fit after 3; 7 > 4 runs alone
        assert [len(b) for b in rec.batches] == [1, 3, 2, 7, 2]
    finally:
        batcher.stop()


def test_a_failing_request_does_not_fail_the_others():
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = Batcher(rec, max_batch_size=10, max_wait_ms=0)
    try:
        batcher.submit(["warm"])
        time.sleep(0.2)
        good1, bad, good2 = batcher.submit(["a"]), batcher.submit(["bad", "b"]), batcher.submit(["c"])
        gate.set()
        assert good1.result(10) == ["A"] and good2.result(10) == ["C"]
        with pytest.raises(ValueError, match="bad input"):
            bad.result(10)
        assert ["a", "bad", "b", "c"] in rec.batches  # tried together first, then one by one
        assert batcher.stats()["failed_requests"] == 1
        assert batcher.submit(["d"]).result(10) == ["D"]  # the worker lives on
    finally:
        batcher.stop()


def test_wrong_number_of_results_is_an_error():
    batcher = Batcher(lambda items: items[:-1], max_wait_ms=0)
    try:
        with pytest.raises(RuntimeError, match="returned 1 results for 2 inputs"):
            batcher.submit(["a", "b"]).result(10)
    finally:
        batcher.stop()


def test_queue_bound_cancellation_and_stop():
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = Batcher(rec, max_batch_size=1, max_wait_ms=0, max_queue=2)
    running = batcher.submit(["run"])
    time.sleep(0.2)  # taken by the worker
    cancelled = batcher.submit(["gone"])
    waiting = batcher.submit(["wait"])
    with pytest.raises(QueueFull, match="2 requests are already waiting"):
        batcher.submit(["more"])
    assert cancelled.cancel()  # a client that gave up: its items are never run
    gate.set()
    assert running.result(10) == ["RUN"] and waiting.result(10) == ["WAIT"]
    assert ["gone"] not in rec.batches
    batcher.stop()
    assert not batcher.running
    with pytest.raises(BatcherClosed):
        batcher.submit(["late"])


def test_stop_fails_waiting_requests():
    gate = threading.Event()
    batcher = Batcher(Recorder(gate), max_batch_size=1, max_wait_ms=0)
    running = batcher.submit(["a"])
    time.sleep(0.2)
    waiting = [batcher.submit([c]) for c in "bcd"]
    stopper = threading.Thread(target=batcher.stop)
    stopper.start()
    time.sleep(0.2)
    gate.set()
    stopper.join(10)
    assert running.result(10) == ["A"]
    for future in waiting:  # run before the stop signal, or failed with BatcherClosed: never left hanging
        try:
            assert future.result(10) in (["B"], ["C"], ["D"])
        except BatcherClosed:
            pass


def test_no_wait_when_nothing_is_incoming():
    rec = Recorder()
    incoming = [0]
    batcher = Batcher(rec, max_batch_size=8, max_wait_ms=60000, incoming=lambda: incoming[0])
    try:
        start = time.monotonic()
        assert batcher.submit(["alone"]).result(10) == ["ALONE"]  # no one else: no 60 s wait
        assert time.monotonic() - start < 5
        incoming[0] = 1  # a request is being received: the batch waits for it
        first = batcher.submit(["first"])
        time.sleep(0.3)
        assert not first.done()
        second = batcher.submit(["second"])
        incoming[0] = 0
        assert first.result(10) == ["FIRST"] and second.result(10) == ["SECOND"]
        assert rec.batches == [["alone"], ["first", "second"]]
    finally:
        batcher.stop()


@pytest.mark.parametrize(
    "kwargs", [dict(max_batch_size=0), dict(max_wait_ms=-1), dict(max_wait_ms=float("inf")), dict(max_queue=0)]
)
def test_bad_settings(kwargs):
    with pytest.raises(ValueError):
        Batcher(lambda items: items, **kwargs)
