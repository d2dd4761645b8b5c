"""Benchmark: index 1,000 generated templates, and the cost of an unchanged reload check.

Run: ``python benchmarks/bench_loader.py [--templates 1000] [--files 50] [--repeat 7]``.

Generates ``--templates`` templates (one in four an ``On`` schedule, the rest
``Pipeline``-shaped mappings with params, a matrix and a few stages) spread over
``--files`` YAML files in nested folders of a temporary conf folder, then reports:

* **index**: ``Loader(conf)`` followed by ``get()`` of every name - templates per second,
  with the LibYAML parser (the default when available) and with the pure-Python one;
* **lookup**: ``get()`` alone on a built loader - lookups per second (dictionary hits;
  no file is read again);
* **refreshed()**: the reload check with nothing changed (one directory walk and one
  ``stat`` per file) - microseconds per call.

Each figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ddeutil.workflow import loader as loader_module
from ddeutil.workflow.loader import Loader

ON_TEMPLATE = """\
on_{i:04d}:
  type: on.On
  cron: "{minute} */{hours} * * *"
  timezone: "Asia/Bangkok"
"""

PIPELINE_TEMPLATE = """\
pipeline-{i:04d}:
  type: ddeutil.workflow.pipeline.Pipeline
  desc: Ingest source {i} into the raw zone
  on: on_{on:04d}
  catchup: latest
  params:
    run-date:
      type: datetime
      default: "2024-01-01"
      desc: logical date
    mode:
      type: choice
      options: [full, delta]
      default: delta
    source: str
  jobs:
    extract:
      strategy:
        max-parallel: 2
        matrix:
          table: [orders, refunds, customers]
      stages:
        - name: "Extract ${{{{ matrix.table }}}}"
          id: extract
          bash: echo "extract ${{{{ matrix.table }}}} for ${{{{ params.run-date }}}}"
        - name: Count
          id: count
          run: rows = 42
    publish:
      needs: [extract]
      if: "'${{{{ params.mode }}}}' == 'full'"
      stages:
        - name: Announce
          echo: "published on ${{{{ release.logical_date }}}}"
"""


def generate(conf: Path, templates: int, files: int) -> None:
    """Write ``templates`` templates round-robin into ``files`` files under ``conf``."""
    bodies: list[list[str]] = [[] for _ in range(files)]
    for i in range(templates):
        if i % 4 == 0:
            text = ON_TEMPLATE.format(i=i, minute=i % 60, hours=1 + i % 6)
        else:
            text = PIPELINE_TEMPLATE.format(i=i, on=i - i % 4)
        bodies[i % files].append(text)
    for n, body in enumerate(bodies):
        path = conf / f"team-{n % 5}" / f"file-{n:03d}.yml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(body), encoding="utf-8")


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


@contextmanager
def yaml_parser(kind: str) -> Iterator[bool]:
    """Temporarily select the parser the loader uses; yields False if unavailable."""
    original = loader_module.YamlLoader
    chosen = loader_module._CSafeLoader if kind == "libyaml" else loader_module._PySafeLoader
    if chosen is None:
        yield False
        return
    loader_module.YamlLoader = chosen
    try:
        yield True
    finally:
        loader_module.YamlLoader = original


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=1000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "conf"
        generate(conf, args.templates, args.files)
        size = sum(p.stat().st_size for p in conf.rglob("*.yml"))
        print(
            f"{args.templates} templates in {args.files} files ({size / 1024:.0f} KiB), "
            f"median of {args.repeat} runs"
        )

        for kind in ("libyaml", "python"):
            with yaml_parser(kind) as available:
                if not available:
                    print(f"index ({kind:7}): not available")
                    continue

                def index() -> Loader:
                    built = Loader(conf)
                    for name in built.names():
                        built.get(name)
                    return built

                built = index()
                assert len(built.names()) == args.templates, built.errors[:3]
                assert not built.errors, built.errors[:3]
                seconds = median_seconds(index, args.repeat)
                print(
                    f"index ({kind:7}): {seconds * 1000:8.1f} ms  "
                    f"{args.templates / seconds:10,.0f} templates/s"
                )

        built = Loader(conf)
        names = built.names()

        def lookups() -> None:
            for name in names:
                built.get(name)

        seconds = median_seconds(lookups, args.repeat)
        print(f"lookup get()    : {len(names) / seconds:14,.0f} lookups/s")

        assert built.refreshed() is built
        calls = 100
        seconds = median_seconds(lambda: [built.refreshed() for _ in range(calls)], args.repeat)
        print(
            f"refreshed()     : {seconds / calls * 1e6:8.1f} us per call, no change "
            f"({args.files} files)"
        )


if __name__ == "__main__":
    main()
