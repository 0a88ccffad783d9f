"""Dynamic batching: one worker thread runs the model on the inputs of concurrent requests together.

    batcher = Batcher(predict, max_batch_size=32, max_wait_ms=5)   # predict(list of items) -> list of results
    future = batcher.submit(["a text", "another"])                 # a concurrent.futures.Future
    future.result()                                                # this request's results, in order

The worker takes the oldest waiting request, then keeps collecting requests (whole ones, in arrival
order) until the batch holds ``max_batch_size`` items or ``max_wait_ms`` has passed since it took the
first one, or, given an ``incoming`` counter (requests received but not yet submitted, kept by the
server), as soon as nothing is waiting and nothing is incoming: a lone client does not pay the wait.
It calls ``predict`` once on all their items and hands each request its own slice of the
results. A request with more items than ``max_batch_size`` runs alone. When a batch of several
requests fails, each request is run again on its own, so one bad request cannot fail the others.

Pure Python (threads and queues), no Paddle.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Dict, List, Optional, Sequence

__all__ = ["Batcher", "BatcherClosed", "QueueFull"]

logger = logging.getLogger("paddle_binbert.serve")


class QueueFull(RuntimeError):
    """More requests are waiting than the batcher accepts (``max_queue``)."""


class BatcherClosed(RuntimeError):
    """The batcher was stopped (the server is shutting down)."""


class _Job:
    __slots__ = ("items", "future", "submitted")

    def __init__(self, items: List[Any]) -> None:
        self.items = items
        self.future: Future = Future()
        self.submitted = time.monotonic()


_STOP = object()
_POLL_S = 0.002


class Batcher:
    """Collects the items of concurrent requests into batches run by one worker thread.

    Args:
        predict: called in the worker thread with a list of items; returns one result per item, in
            order (e.g. :class:`paddle_binbert.runtime.Predictor`).
        max_batch_size: most items per call of ``predict`` (a larger request runs alone).
        max_wait_ms: how long the worker waits for more requests after taking the first one of a batch
            (0: run what is already waiting).
        max_queue: most requests waiting; :meth:`submit` raises :class:`QueueFull` beyond it.
        incoming: returns how many requests are being received and will be submitted soon; when it is 0
            and no request waits, the batch runs without waiting (None: always wait ``max_wait_ms``).
    """

    def __init__(
        self,
        predict: Callable[[List[Any]], Sequence[Any]],
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 1024,
        incoming: Optional[Callable[[], int]] = None,
        name: str = "binbert-batcher",
    ) -> None:
        if int(max_batch_size) < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size!r}")
        if not 0 <= float(max_wait_ms) < float("inf"):
            raise ValueError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms!r}")
        if int(max_queue) < 1:
            raise ValueError(f"max_queue must be >= 1, got {max_queue!r}")
        self.predict = predict
        self.max_batch_size = int(max_batch_size)
        self.max_wait_s = float(max_wait_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.incoming = incoming
        self.name = name
        self._queue: queue.Queue = queue.Queue(maxsize=self.max_queue)
        self._carry: Optional[_Job] = None  # a job taken from the queue that did not fit the last batch
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._closed = False
        self._stats = {"requests": 0, "items": 0, "batches": 0, "batch_items_max": 0, "failed_requests": 0}
        self._busy_s = 0.0

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        """Start the worker thread (done by the first :meth:`submit` too)."""
        with self._lock:
            if self._closed:
                raise BatcherClosed("the batcher is stopped")
            self._start_locked()

    def _start_locked(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
            self._thread.start()

    def submit(self, items: Sequence[Any]) -> Future:
        """Queue one request's items; the returned future gives their results (a list, in order) or the
        exception ``predict`` raised on them. Raises :class:`QueueFull` or :class:`BatcherClosed`."""
        items = list(items)
        if not items:
            raise ValueError("a request needs at least one item")
        job = _Job(items)
        # the closed check and the put are atomic with stop(): no job is queued after stop() drained the queue
        with self._lock:
            if self._closed:
                raise BatcherClosed("the server is shutting down")
            self._start_locked()
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise QueueFull(f"{self.max_queue} requests are already waiting; try again later") from None
        return job.future

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker after the batch it is running; waiting requests fail with BatcherClosed."""
        with self._lock:
            self._closed = True
            thread = self._thread
        if thread is not None and thread.is_alive():
            # The worker checks ``_closed`` before taking each job; the sentinel only wakes it when it
            # blocks on an empty queue. A full queue is not empty, so then no sentinel is needed.
            self._wake_worker()
            thread.join(max(0.0, timeout))
        # the worker fails what it leaves behind when it ends; if it is still in ``predict``, fail the
        # waiting requests now rather than when it returns
        self._fail_waiting(worker_alive=thread is not None and thread.is_alive())

    @property
    def closed(self) -> bool:
        """True once :meth:`stop` was called."""
        return self._closed

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stats(self) -> Dict[str, Any]:
        """Counters: requests and items answered, batches run, the largest batch, mean items per
        batch, requests failed, requests waiting, seconds spent in ``predict``."""
        with self._lock:
            out: Dict[str, Any] = dict(self._stats)
            busy = self._busy_s
        out["mean_batch_items"] = round(out["items"] / out["batches"], 3) if out["batches"] else 0.0
        out["waiting"] = self._queue.qsize()
        out["predict_s"] = round(busy, 6)
        return out

    # ------------------------------------------------------------------ worker
    def _next_job(self, timeout: Optional[float]) -> Any:
        """The next live job (cancelled ones skipped), _STOP, or None after ``timeout`` seconds."""
        while True:
            if self._closed:  # stopped: run nothing more (what is left fails in _loop's finally)
                return _STOP
            if self._carry is not None:
                job, self._carry = self._carry, None
                return job
            try:
                if timeout is None:
                    job = self._queue.get()
                elif timeout <= 0:
                    job = self._queue.get_nowait()
                else:
                    job = self._queue.get(timeout=timeout)
            except queue.Empty:
                return None
            if job is _STOP:
                return job
            if job.future.set_running_or_notify_cancel():  # False: the client gave up (timeout)
                return job

    def _loop(self) -> None:
        try:
            self._run_loop()
        finally:
            self._fail_waiting(worker_alive=False)

    def _run_loop(self) -> None:
        while True:
            first = self._next_job(None)
            if first is _STOP:
                return
            batch = [first]
            count = len(first.items)
            deadline = time.monotonic() + self.max_wait_s
            stop = False
            while count < self.max_batch_size:
                if self._nothing_coming():
                    break
                remaining = deadline - time.monotonic()
                # with an incoming counter, wake up often to see whether anything is still coming
                job = self._next_job(remaining if self.incoming is None else min(remaining, _POLL_S))
                if job is None:
                    if time.monotonic() >= deadline:
                        break
                    continue
                if job is _STOP:
                    stop = True
                    break
                if count + len(job.items) > self.max_batch_size:
                    self._carry = job  # first of the next batch
                    break
                batch.append(job)
                count += len(job.items)
            self._run_batch(batch)
            if stop:
                return

    def _nothing_coming(self) -> bool:
        """No request waiting and, per the server's ``incoming`` counter, none on its way."""
        if self.incoming is None or self._carry is not None or not self._queue.empty():
            return False
        try:
            return int(self.incoming()) <= 0
        except Exception:  # noqa: BLE001 - a broken counter only costs the wait
            return False

    def _run_batch(self, batch: List[_Job]) -> None:
        items = [item for job in batch for item in job.items]
        start = time.monotonic()
        try:
            results = self._call(items)
        except BaseException as err:  # noqa: BLE001 - reported to the requests, the worker goes on
            if len(batch) == 1:
                self._finish(batch[0], error=err)
            else:  # isolate the request that fails
                logger.warning("a batch of %d requests failed (%r); running them one by one", len(batch), err)
                for job in batch:
                    self._run_batch([job])
                return
        else:
            offset = 0
            for job in batch:
                self._finish(job, results=results[offset : offset + len(job.items)])
                offset += len(job.items)
        with self._lock:
            self._stats["batches"] += 1
            self._stats["items"] += len(items)
            self._stats["batch_items_max"] = max(self._stats["batch_items_max"], len(items))
            self._busy_s += time.monotonic() - start

    def _call(self, items: List[Any]) -> List[Any]:
        results = list(self.predict(items))
        if len(results) != len(items):
            raise RuntimeError(f"the model returned {len(results)} results for {len(items)} inputs")
        return results

    def _finish(self, job: _Job, results: Optional[List[Any]] = None, error: Optional[BaseException] = None) -> None:
        with self._lock:
            self._stats["requests"] += 1
            if error is not None:
                self._stats["failed_requests"] += 1
        if job.future.done():
            return
        if error is not None:
            job.future.set_exception(error)
        else:
            job.future.set_result(results)

    def _wake_worker(self) -> None:
        try:
            self._queue.put_nowait(_STOP)
        except queue.Full:
            pass  # not empty: the worker's next get returns at once and it then sees ``_closed``

    def _fail_waiting(self, worker_alive: bool) -> None:
        """Fail the requests left waiting with BatcherClosed. Called by the worker as it ends, and by
        :meth:`stop`; while the worker lives, ``_carry`` is left to it (it fails it as it ends) and the
        stop sentinel is put back, so that the worker never blocks on an emptied queue."""
        jobs: List[Any] = []
        if not worker_alive and self._carry is not None:
            jobs.append(self._carry)
            self._carry = None
        while True:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if worker_alive:
            self._wake_worker()
        for job in jobs:
            if job is _STOP:
                continue
            future = job.future
            if future.done():  # cancelled by its client (or already answered)
                continue
            # a queued job is still pending (set_running_or_notify_cancel: False if just cancelled);
            # the carry was already set running by the worker
            if not future.running() and not future.set_running_or_notify_cancel():
                continue
            if not future.done():
                future.set_exception(BatcherClosed("the server is shutting down"))
