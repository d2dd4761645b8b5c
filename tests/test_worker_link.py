"""The daemon <-> worker pipes: frames in order, never blocking, batched events."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.dispatch.execute import RunRequest
from ddeutil.workflow.dispatch.handle import WorkerHandle
from ddeutil.workflow.dispatch.threads import ExecEvent
from ddeutil.workflow.dispatch.wire import EventSender, FrameReader, RunDecoder, RunEncoder, dumps
from ddeutil.workflow.engine.pipeline_cache import template_version
from ddeutil.workflow.loader import RawTemplate
from ddeutil.workflow.store.base import ReleaseKey, TriggerKind


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
        worker.send(dumps(("run", n, b"x" * size)))
    for n, size in enumerate(sizes):
        assert reader.recv() == ("run", n, b"x" * size)


def test_send_never_blocks_on_a_full_pipe(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    worker, reader, _ = link
    # Nobody reads yet: 64 frames of 8 KiB overflow the 64 KiB pipe.
    done = threading.Event()

    def flood() -> None:
        for n in range(64):
            worker.send(dumps(("run", n, b"y" * 8192)))
        done.set()

    thread = threading.Thread(target=flood)
    thread.start()
    assert done.wait(10), "send() blocked on a full pipe"
    got = [reader.recv()[1] for _ in range(64)]
    assert got == list(range(64))
    thread.join(10)


def test_a_message_to_a_dead_worker_is_dropped_without_error(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    worker, reader, _ = link
    reader.close()  # the worker's end is gone
    worker.send(dumps(("run", 1)))
    worker.send(dumps(("run", 2, b"z" * 100_000)))  # through the writer thread


def test_the_reader_reports_eof_when_the_daemon_closes_its_end(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    worker, reader, _ = link
    worker.send(dumps(("stop", "bye")))
    worker.close()
    assert reader.recv() == ("stop", "bye")
    with pytest.raises(EOFError):
        reader.recv()


def test_events_are_sent_in_batches_in_order_and_flushed_on_close() -> None:
    events_r, events_w = multiprocessing.Pipe(duplex=False)
    sender = EventSender(events_w, name="test-events")
    messages: list[tuple[Any, ...]] = [("ready", 1)]
    messages += [("event", ExecEvent("finished", f"r{n}")) for n in range(200)]  # fits the pipe
    for message in messages:
        sender.put(message)
    sender.close()
    received: list[tuple[Any, ...]] = []
    deadline = time.monotonic() + 10
    while len(received) < len(messages) and time.monotonic() < deadline:
        assert events_r.poll(10)
        kind, batch = events_r.recv()
        assert kind == "batch"
        received.extend(batch)
    assert received == messages
    events_r.close()
    events_w.close()


def test_an_event_sender_outlives_a_gone_daemon() -> None:
    events_r, events_w = multiprocessing.Pipe(duplex=False)
    events_r.close()
    sender = EventSender(events_w, name="test-events")
    sender.put(("event", ExecEvent("started", "r1")))
    sender.close()  # returns: the broken pipe is swallowed
    events_w.close()


def test_a_woken_reader_returns_none_now_and_later(
    link: tuple[WorkerHandle, FrameReader, Connection],
) -> None:
    _, reader, _ = link
    got: list[Any] = []
    thread = threading.Thread(target=lambda: got.append(reader.recv()))
    thread.start()
    reader.wake()  # from another thread, while recv() blocks
    thread.join(10)
    assert not thread.is_alive()
    assert got == [None]
    assert reader.recv() is None


def test_run_messages_carry_each_template_version_pickled_once_and_decode_to_equal_requests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    template = RawTemplate(
        name="p", file=tmp_path / "p.yml", data={"type": "Pipeline", "jobs": {}}, type="Pipeline"
    )
    at = datetime(2024, 1, 1, tzinfo=timezone.utc)
    requests = [
        RunRequest(
            run_id=f"r{n}",
            pipeline="p",
            template=template,
            params={"n": n},
            logical_date=at,
            release=ReleaseKey("p", "* * * * *@UTC", at),
            trigger=TriggerKind.SCHEDULE,
            version=template_version(template),
        )
        for n in range(3)
    ]
    encoder, decoder = RunEncoder(), RunDecoder()
    pickled_templates: list[object] = []
    original = ForkingPickler.dumps

    def spy(obj: object, protocol: int | None = None) -> memoryview:
        if isinstance(obj, RawTemplate):
            pickled_templates.append(obj)
        return original(obj, protocol)

    monkeypatch.setattr(ForkingPickler, "dumps", spy)
    decoded = [decoder.decode(pickle.loads(encoder.encode(r))) for r in requests]

    assert decoded == requests
    assert len(pickled_templates) == 1  # one pickling for the version
    assert decoded[0].template is decoded[2].template  # one unpickling too
    # a request without a version is sent with the version of its template
    bare = RunRequest(run_id="bare", pipeline="p", template=template)
    again = decoder.decode(pickle.loads(encoder.encode(bare)))
    assert again.version == template_version(template)
    assert again.template is decoded[0].template
