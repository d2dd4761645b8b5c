"""The daemon <-> worker pipes: frames in order, never blocking, batched events."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from ddeutil.workflow.dispatch.handle import WorkerHandle
from ddeutil.workflow.dispatch.records import RunEvent, RunRequest
from ddeutil.workflow.dispatch.wire import (
    Batch,
    EventSender,
    FrameReader,
    FromWorker,
    KeptTemplates,
    Ready,
    Run,
    SentVersions,
    StageTime,
    Stop,
    dumps,
)
from ddeutil.workflow.loader import RawTemplate


def run(n: int, size: int = 0) -> Run:
    """A run message of ``size`` bytes of params."""
    return Run(RunRequest(run_id=f"r{n}", pipeline="p", params={"blob": "x" * size}))


class _Process:
    """Stands in for the multiprocessing.Process of a worker."""

    pid = 4242


@pytest.fixture
def link() -> Iterator[tuple[WorkerHandle, FrameReader, Connection]]:
    requests_r, requests_w = multiprocessing.Pipe(duplex=False)
    events_r, events_w = multiprocessing.Pipe(duplex=False)
    worker = WorkerHandle(0, _Process(), requests_w, events_r)
    reader = FrameReader.over(requests_r)
    yield worker, reader, events_w
    worker.close()
    reader.close()
    events_w.close()


def test_messages_arrive_in_order_small_and_large_alike(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    worker, reader, _ = link
    # Small frames go straight into the pipe; large ones (and everything behind
    # them) go through the writer thread. Order holds across both paths.
    sizes = [10, 100_000, 10, 5_000, 10, 300_000, 10]
    for n, size in enumerate(sizes):
        worker.send(dumps(run(n, size)))
    for n, size in enumerate(sizes):
        assert reader.recv() == run(n, size)


def test_send_never_blocks_on_a_full_pipe(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    worker, reader, _ = link
    # Nobody reads yet: 64 frames of 8 KiB overflow the 64 KiB pipe.
    done = threading.Event()

    def flood() -> None:
        for n in range(64):
            worker.send(dumps(run(n, 8192)))
        done.set()

    thread = threading.Thread(target=flood)
    thread.start()
    assert done.wait(10), "send() blocked on a full pipe"
    got = [reader.recv() for _ in range(64)]
    assert got == [run(n, 8192) for n in range(64)]
    thread.join(10)


def test_a_message_to_a_dead_worker_is_dropped_without_error(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    worker, reader, _ = link
    reader.close()  # the worker's end is gone
    worker.send(dumps(run(1)))
    worker.send(dumps(run(2, 100_000)))  # through the writer thread


def test_the_reader_reports_eof_when_the_daemon_closes_its_end(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    worker, reader, _ = link
    worker.send(dumps(Stop("bye")))
    worker.close()
    assert reader.recv() == Stop("bye")
    with pytest.raises(EOFError):
        reader.recv()


def test_events_are_sent_in_batches_in_order_and_flushed_on_close() -> None:
    events_r, events_w = multiprocessing.Pipe(duplex=False)
    sender = EventSender(events_w, name="test-events")
    messages: list[FromWorker] = [Ready(1), StageTime(0.25)]
    messages += [RunEvent("finished", f"r{n}") for n in range(200)]  # fits the pipe
    for message in messages:
        sender.put(message)
    sender.close()
    received: list[FromWorker] = []
    deadline = time.monotonic() + 10
    while len(received) < len(messages) and time.monotonic() < deadline:
        assert events_r.poll(10)
        batch = events_r.recv()
        assert isinstance(batch, Batch)
        received.extend(batch.messages)
    assert received == messages
    events_r.close()
    events_w.close()


def test_an_event_sender_outlives_a_gone_daemon() -> None:
    events_r, events_w = multiprocessing.Pipe(duplex=False)
    events_r.close()
    sender = EventSender(events_w, name="test-events")
    sender.put(RunEvent("started", "r1"))
    sender.close()  # returns: the broken pipe is swallowed
    events_w.close()


def test_a_woken_reader_returns_none_now_and_later(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    _, reader, _ = link
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.append(reader.recv()))
    thread.start()
    reader.wake()  # from another thread, while recv() blocks
    thread.join(10)
    assert not thread.is_alive()
    assert got == [None]
    assert reader.recv() is None


def test_the_daemon_knows_which_template_versions_its_worker_keeps(tmp_path: Path) -> None:
    def template(name: str) -> RawTemplate:
        return RawTemplate(name=name, file=tmp_path / "p.yml", data={"jobs": {}}, type="Pipeline")

    sent, kept = SentVersions(size=2), KeptTemplates(size=2)
    requests = [RunRequest(f"r{n}", f"p{n % 3}", version=f"v{n % 3}") for n in range(7)]
    carried: list[str] = []
    for request in requests:  # the daemon sends; the worker receives, in order
        if sent.needs(request):
            sent.sent(request)
            kept.put(request, template(request.pipeline))
            carried.append(request.run_id)
        assert kept.get(request.pipeline, request.version) is not None

    # three versions, two kept: each comes back once it was forgotten, never before
    assert carried == ["r0", "r1", "r2", "r3", "r4", "r5", "r6"]
    again = [RunRequest("a", "p0", version="v0"), RunRequest("b", "p1", version="v1")]
    assert [sent.needs(r) for r in again] == [False, True]  # p0 v0 is kept, p1 v1 was dropped
    assert kept.get("p1", "v1") is None
    unversioned = RunRequest("c", "p1")
    assert sent.needs(unversioned)  # a request without a version always carries its template
    kept.put(unversioned, template("p1-current"))
    assert kept.get("p1", None) == template("p1-current")
    assert kept.get("p1", "v9") is None
