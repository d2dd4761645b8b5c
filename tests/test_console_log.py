"""The console handler of configure_logging: threads queue lines, one writer writes them."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ddeutil.workflow.logs import configure_logging
from ddeutil.workflow.masking import Masker

LOGGER = "ddeutil.workflow.test.console"


@pytest.fixture
def root() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level = root.level
    yield root
    for handler in [h for h in root.handlers if getattr(h, "_ddeutil_workflow", False)]:
        root.removeHandler(handler)
        handler.close()
    root.setLevel(level)


def test_lines_of_many_threads_are_all_written_whole_and_in_order_per_thread(
    tmp_path: Path, root: logging.Logger
) -> None:
    path = tmp_path / "console.log"
    threads, lines = 20, 50
    with path.open("w", encoding="utf-8") as stream:
        handler = configure_logging(fmt="json", level="INFO", stream=stream)
        start = threading.Barrier(threads)
        log = logging.getLogger(LOGGER)

        def run(n: int) -> None:
            start.wait(10)
            for i in range(lines):
                log.info("t%d line %d", n, i)

        workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        handler.flush()  # every line queued before it is written when it returns
        records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == threads * lines
    for n in range(threads):
        mine = [r["message"] for r in records if r["message"].startswith(f"t{n} ")]
        assert mine == [f"t{n} line {i}" for i in range(lines)]


def test_close_writes_what_is_queued(tmp_path: Path, root: logging.Logger) -> None:
    path = tmp_path / "console.log"
    with path.open("w", encoding="utf-8") as stream:
        handler = configure_logging(fmt="text", level="INFO", stream=stream)
        for i in range(100):
            logging.getLogger(LOGGER).info("line %d", i)
        root.removeHandler(handler)
        handler.close()
        text = path.read_text()
    assert [line.rsplit(" ", 1)[-1] for line in text.splitlines()] == [str(i) for i in range(100)]


def test_a_stream_without_a_file_descriptor_is_written_at_once(root: logging.Logger) -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", level="INFO", stream=stream, masker=Masker(frozenset({"s3cr3t"})))
    logging.getLogger(LOGGER).info("token s3cr3t")
    assert json.loads(stream.getvalue())["message"] == "token ***"


def test_a_process_that_logged_exits_at_once_with_every_line_written(tmp_path: Path) -> None:
    """logging.shutdown() flushes while holding the handler's lock: no deadlock at exit.

    Each of the two waits a deadlock would hit is bounded at 10 s; a process that
    needs more than 5 s to exit has waited on one of them.
    """
    import subprocess
    import sys
    import time

    code = (
        "import logging\n"
        "from ddeutil.workflow.logs import configure_logging\n"
        "configure_logging(fmt='json', level='INFO')\n"
        "for n in range(100):\n"
        "    logging.getLogger('ddeutil.workflow.test').info('line %d', n)\n"
    )
    out = tmp_path / "out.log"
    began = time.monotonic()
    with out.open("w", encoding="utf-8") as stream:
        subprocess.run(
            [sys.executable, "-c", code], stdout=stream, stderr=stream, check=True, timeout=60
        )
    took = time.monotonic() - began
    messages = [json.loads(line)["message"] for line in out.read_text().splitlines()]
    assert messages == [f"line {n}" for n in range(100)]
    assert took < 5.0


def _run_bounded(root: Path, conf: str, name: str) -> str:
    """Run pipeline ``name`` of ``conf`` in a thread; its status, or fail if it hangs."""
    from ddeutil.workflow.engine.pipeline import Pipeline
    from ddeutil.workflow.loader import Loader
    from ddeutil.workflow.settings import Settings

    (root / "conf").mkdir()
    (root / "conf" / "p.yml").write_text(conf, encoding="utf-8")
    settings = Settings.from_env({"WORKFLOW_ROOT_PATH": str(root)})
    pipe = Pipeline.from_loader(name, settings=settings, loader=Loader.from_settings(settings))
    results = []
    runner = threading.Thread(target=lambda: results.append(pipe.execute(settings=settings)))
    runner.start()
    runner.join(30)
    assert not runner.is_alive(), "the run is stuck on its own log line"
    return results[0].status.value


def test_a_console_over_the_stage_output_proxy_writes_beneath_it(
    tmp_path: Path, root: logging.Logger
) -> None:
    """A run that logs from inside a stage (a trigger's child) neither hangs nor loops."""
    from ddeutil.workflow.engine.stdio import MaskedStream

    console = io.StringIO()
    proxy: Any = MaskedStream(console, "stdout")  # what sys.stdout is while stages run
    configure_logging(fmt="text", level="INFO", stream=proxy)
    conf = (
        "parent:\n  type: Pipeline\n  jobs:\n    j:\n      stages:\n"
        "        - {name: child, id: child, trigger: child}\n"
        "child:\n  type: Pipeline\n  jobs:\n    w:\n      stages:\n"
        "        - {name: say, run: 'print(\"hi\")'}\n"
    )
    assert _run_bounded(tmp_path, conf, "parent") == "SUCCESS"
    text = console.getvalue()
    assert "pipeline 'child' started" in text, text  # a log line, written once
    assert "| pipeline 'child' started" not in text  # not taken for the stage's output


class _Closed(io.StringIO):
    """A console stream that can no longer be written (a closed pipe, a closed file)."""

    def write(self, text: str) -> int:
        raise ValueError("I/O operation on closed file")


def test_a_console_that_cannot_write_never_stalls_a_run(
    tmp_path: Path, root: logging.Logger
) -> None:
    """The write error is reported on stderr, which a stage routes into logging again."""
    configure_logging(fmt="text", level="INFO", stream=_Closed())
    conf = (
        "talk:\n  type: Pipeline\n  jobs:\n    j:\n      stages:\n"
        "        - {name: say, echo: hello}\n        - {name: more, run: 'print(1)'}\n"
    )
    assert _run_bounded(tmp_path, conf, "talk") == "SUCCESS"
