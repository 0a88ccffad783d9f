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
        self.entered = threading.Event()  # set once predict was called (the worker took a job)

    def __call__(self, items):
        self.entered.set()
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
        assert rec.entered.wait(10)
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
        assert rec.entered.wait(10)
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
    assert rec.entered.wait(10)  # taken by the worker
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
    rec = Recorder(gate)
    batcher = Batcher(rec, max_batch_size=1, max_wait_ms=0)
    running = batcher.submit(["a"])
    assert rec.entered.wait(10)  # the worker is in predict, waiting for the gate
    waiting = [batcher.submit([c]) for c in "bcd"]
    errors = []
    stopper = threading.Thread(target=lambda: _call_catching(errors, batcher.stop))
    stopper.start()
    while not batcher.closed:  # stop() has begun: the waiting requests will not be run
        time.sleep(0.001)
    gate.set()
    stopper.join(10)
    assert not stopper.is_alive() and errors == []
    assert running.result(10) == ["A"]  # the batch being run when stop() came is finished
    for future in waiting:
        with pytest.raises(BatcherClosed, match="shutting down"):
            future.result(10)
    assert rec.batches == [["a"]]
    assert not batcher.running
    with pytest.raises(BatcherClosed):
        batcher.submit(["late"])


def _call_catching(errors, fn, *args):
    try:
        fn(*args)
    except BaseException as err:  # noqa: BLE001 - reported to the test
        errors.append(err)


def test_stop_timing_out_while_predict_runs():
    """stop() whose join times out while predict still runs: no error, no hang, every future ends."""
    gate = threading.Event()
    rec = Recorder(gate)
    batcher = Batcher(rec, max_batch_size=1, max_wait_ms=0)
    try:
        running = batcher.submit(["a"])
        assert rec.entered.wait(10)
        waiting = [batcher.submit(["b"]), batcher.submit(["c"]), batcher.submit(["d"])]
        batcher.stop(timeout=0.05)  # predict is blocked: the join times out; must not raise
        assert batcher.closed and batcher.running
        with pytest.raises(BatcherClosed):
            batcher.submit(["late"])  # nothing is queued after stop()
        gate.set()
        assert running.result(10) == ["A"]
        for future in waiting:
            with pytest.raises(BatcherClosed):
                future.result(10)
        deadline = time.monotonic() + 10
        while batcher.running and time.monotonic() < deadline:  # the worker ends: not blocked on the queue
            time.sleep(0.01)
        assert not batcher.running
        batcher.stop(timeout=1)  # again: a no-op
    finally:
        gate.set()
        batcher.stop(timeout=1)


def test_stop_timing_out_with_a_carried_request():
    """The worker holds a request taken for the next batch (its carry) when stop() times out: stop()
    fails the queued requests at once, leaves the carry to the worker, which fails it as it ends."""
    gates = [threading.Event(), threading.Event()]
    entered = [threading.Event(), threading.Event()]
    calls = []

    def predict(items):
        n = len(calls)
        calls.append(list(items))
        if n < 2:
            entered[n].set()
            assert gates[n].wait(10)
        return [item.upper() for item in items]

    batcher = Batcher(predict, max_batch_size=2, max_wait_ms=0)
    try:
        first = batcher.submit(["a"])
        assert entered[0].wait(10)  # predict(["a"]) blocks
        second = batcher.submit(["c"])
        carried = batcher.submit(["d", "d2"])  # does not fit after "c": the worker's carry
        queued = batcher.submit(["e"])
        gates[0].set()
        assert entered[1].wait(10)  # predict(["c"]) blocks, "d" is carried, "e" is queued
        batcher.stop(timeout=0.05)  # must not raise
        with pytest.raises(BatcherClosed):
            queued.result(0)  # failed by stop() itself, while predict still runs
        assert not carried.done()  # left to the worker
        gates[1].set()
        assert first.result(10) == ["A"] and second.result(10) == ["C"]
        with pytest.raises(BatcherClosed):
            carried.result(10)
        deadline = time.monotonic() + 10
        while batcher.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not batcher.running
        assert calls == [["a"], ["c"]]
    finally:
        for gate in gates:
            gate.set()
        batcher.stop(timeout=1)


def test_submit_racing_stop_never_hangs():
    """Requests submitted while stop() runs are answered, refused or failed: never left pending."""
    rec = Recorder()
    batcher = Batcher(rec, max_batch_size=4, max_wait_ms=1)
    futures, refused = [], []
    go = threading.Event()

    def client():
        go.wait(10)
        for i in range(200):
            try:
                futures.append(batcher.submit([f"x{i}"]))
            except BatcherClosed:
                refused.append(i)

    clients = [threading.Thread(target=client) for _ in range(2)]
    for t in clients:
        t.start()
    go.set()
    batcher.stop(timeout=5)
    for t in clients:
        t.join(10)
        assert not t.is_alive()
    for future in futures:
        try:
            future.result(10)  # raises TimeoutError (fails the test) if left pending
        except BatcherClosed:
            pass
    assert not batcher.running


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
