"""A fake ``Pipeline``: ``on`` (names or inline mappings) and ``params`` only."""

from __future__ import annotations

from typing import Any

from ddeutil.workflow.errors import ConfigError, TemplateNotFound

from .on import On


class Pipeline:
    """Builds its schedules through the loader, like the real one."""

    def __init__(self, name: str, on: tuple[On, ...], params: dict[str, Any]) -> None:
        self.name = name
        self.on = on
        self.params = params

    @classmethod
    def from_template(cls, template: Any, *, loader: Any, settings: Any) -> Pipeline:
        raw = template.data.get("on", [])
        items = [raw] if isinstance(raw, (str, dict)) else list(raw)
        schedules = []
        for i, item in enumerate(items):
            if isinstance(item, dict):
                schedules.append(On.from_data(item, name=None, settings=settings, key=f"on[{i}]."))
                continue
            try:
                on_template = loader.get(item)
            except TemplateNotFound as exc:
                raise ConfigError(f"unknown schedule {item!r}", key=f"on[{i}]") from exc
            schedules.append(On.from_template(on_template, loader=loader, settings=settings))
        params = template.data.get("params") or {}
        if not isinstance(params, dict):
            raise ConfigError("params must be a mapping", key="params")
        return cls(template.name, tuple(schedules), params)

    def warnings(self) -> list[str]:
        if not self.on:
            return []
        return [
            f"param {name!r} is required and has no default: scheduled runs will not start"
            for name, spec in self.params.items()
            if not (isinstance(spec, dict) and "default" in spec)
        ]


class SubPipeline(Pipeline):
    """A subclass, for ``Loader.of_type``."""
