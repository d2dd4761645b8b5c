"""RunLogRouter's writer thread: complete files, prompt lines, no shared lock, failures."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ddeutil.workflow.logs import RunLogRouter, run_log_path

LOGGER = "ddeutil.workflow.test.run_logs"


@pytest.fixture
def log() -> Iterator[logging.Logger]:
    logger = logging.getLogger(LOGGER)
    logger.setLevel(logging.INFO)
    yield logger
    logger.setLevel(logging.NOTSET)


def messages(path: Path) -> list[str]:
    return [json.loads(line)["message"] for line in path.read_text().splitlines()]


def test_every_line_of_every_run_is_in_its_file_in_order_when_capture_returns(
    tmp_path: Path, log: logging.Logger
) -> None:
    runs, lines_per_run = 40, 25
    start = threading.Barrier(runs)

    def run(n: int) -> None:
        run_id = f"run-{n}"
        with router.capture(run_id):
            start.wait(10)  # every run logs at the same time
            for i in range(lines_per_run):
                log.info("line %d", i, extra={"run_id": run_id})
        # capture returned: the file must be complete now
        assert messages(run_log_path(tmp_path, run_id)) == [
            f"line {i}" for i in range(lines_per_run)
        ]

    with RunLogRouter.installed(tmp_path) as router:
        threads = [threading.Thread(target=run, args=(n,)) for n in range(runs)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
            assert not thread.is_alive()
    assert len(list(tmp_path.glob("*.log"))) == runs


def test_a_line_reaches_the_file_while_the_run_is_still_captured(
    tmp_path: Path, log: logging.Logger
) -> None:
    with RunLogRouter.installed(tmp_path) as router, router.capture("long") as path:
        log.info("stage started", extra={"run_id": "long"})
        router.flush()
        assert messages(path) == ["stage started"]
        log.info("still going", extra={"run_id": "long"})
        router.flush()
        assert messages(path) == ["stage started", "still going"]


def test_a_run_without_lines_still_gets_its_file(tmp_path: Path) -> None:
    with RunLogRouter.installed(tmp_path) as router, router.capture("quiet") as path:
        pass
    assert path.exists()
    assert path.read_text() == ""


def test_logging_threads_never_wait_on_the_handler_lock(
    tmp_path: Path, log: logging.Logger
) -> None:
    # Emitting only queues the line, so a held handler lock blocks no run.
    with RunLogRouter.installed(tmp_path) as router, router.capture("free") as path:
        router.acquire()
        try:
            thread = threading.Thread(
                target=log.info, args=("not blocked",), kwargs={"extra": {"run_id": "free"}}
            )
            thread.start()
            thread.join(10)
            assert not thread.is_alive()
        finally:
            router.release()
        router.flush()
        assert messages(path) == ["not blocked"]


def test_close_writes_queued_lines_of_runs_still_captured(
    tmp_path: Path, log: logging.Logger
) -> None:
    router = RunLogRouter(tmp_path)
    logging.getLogger(LOGGER).addHandler(router)
    try:
        with router.capture("open-at-close") as path:
            log.info("before close", extra={"run_id": "open-at-close"})
            router.close()
            assert messages(path) == ["before close"]
    finally:
        logging.getLogger(LOGGER).removeHandler(router)


def test_a_file_that_cannot_be_written_is_reported_and_other_runs_go_on(
    tmp_path: Path, log: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    run_log_path(tmp_path, "blocked").mkdir(parents=True)  # a folder where the file goes
    with (
        RunLogRouter.installed(tmp_path) as router,
        caplog.at_level(logging.WARNING, logger="ddeutil.workflow.logs"),
    ):
        with router.capture("blocked"):
            log.info("lost", extra={"run_id": "blocked"})
        with router.capture("fine") as path:
            log.info("kept", extra={"run_id": "fine"})
    assert "cannot write the log file of run blocked" in caplog.text
    assert messages(path) == ["kept"]


def test_a_log_folder_that_cannot_be_created_fails_the_capture(tmp_path: Path) -> None:
    occupied = tmp_path / "logs"
    occupied.write_text("a file, not a folder")
    with RunLogRouter.installed(occupied) as router:
        capture = router.capture("r1")
        with pytest.raises(FileExistsError):
            capture.__enter__()


def test_a_capture_after_close_starts_a_new_writer(tmp_path: Path, log: logging.Logger) -> None:
    with RunLogRouter.installed(tmp_path) as router:
        with router.capture("first") as first:
            log.info("one", extra={"run_id": "first"})
        router.close()
        with router.capture("second") as second:
            log.info("two", extra={"run_id": "second"})
    assert messages(first) == ["one"]
    assert messages(second) == ["two"]


@pytest.mark.parametrize("run_id", ["../../etc/passwd", "/abs/path", "..", "a/../../b", "x\x00y"])
def test_a_run_id_never_names_a_file_outside_the_log_folder(tmp_path: Path, run_id: str) -> None:
    path = run_log_path(tmp_path, run_id)
    assert path.parent == tmp_path
    assert "/" not in path.name
    assert "\x00" not in path.name
