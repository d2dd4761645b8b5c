"""Stages: the steps of a job. The kind follows from the keys present.

| key present | kind | class |
|---|---|---|
| ``bash`` | bash | :class:`BashStage` |
| ``run`` | python | :class:`PyStage` |
| ``uses`` | hook | :class:`HookStage` |
| ``trigger`` | trigger | :class:`TriggerStage` |
| none of these | empty | :class:`EmptyStage` |

A stage with two kind keys is an error, as is any key its kind does not take
(no silent fallback to another kind). :data:`Stage` is the pydantic type of one
stage of any kind.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Discriminator, Tag

from .base import BaseStage, Retry, StagePlan, slugify
from .bash import BashStage
from .empty import EmptyStage
from .hook import HookStage, hook_registry
from .python import PyStage
from .trigger import TriggerStage

__all__ = [
    "KIND_KEYS",
    "STAGE_CLASSES",
    "BaseStage",
    "BashStage",
    "EmptyStage",
    "HookStage",
    "PyStage",
    "Retry",
    "Stage",
    "StagePlan",
    "TriggerStage",
    "hook_registry",
    "slugify",
    "stage_kind",
]

KIND_KEYS: dict[str, str] = {"bash": "bash", "run": "python", "uses": "hook", "trigger": "trigger"}
"""The key that selects each stage kind (a stage with none of them is ``empty``)."""

STAGE_CLASSES: dict[str, type[BaseStage]] = {
    "empty": EmptyStage,
    "python": PyStage,
    "bash": BashStage,
    "hook": HookStage,
    "trigger": TriggerStage,
}


def stage_kind(value: Any) -> str | None:
    """The kind of a raw stage mapping (or of a stage object); ``None`` if ambiguous."""
    if isinstance(value, BaseStage):
        return value.kind
    if isinstance(value, dict):
        kinds = [kind for key, kind in KIND_KEYS.items() if key in value]
        if len(kinds) > 1:
            return None
        if kinds:
            return kinds[0]
    return "empty"


Stage = Annotated[
    Union[  # noqa: UP007 - a tagged union reads clearer spelled out
        Annotated[EmptyStage, Tag("empty")],
        Annotated[PyStage, Tag("python")],
        Annotated[BashStage, Tag("bash")],
        Annotated[HookStage, Tag("hook")],
        Annotated[TriggerStage, Tag("trigger")],
    ],
    Discriminator(
        stage_kind,
        custom_error_type="stage_kind",
        custom_error_message=(
            "a stage takes at most one of the keys bash, run, uses, trigger "
            "(none of them: an empty stage)"
        ),
    ),
]
"""One stage of any kind, selected by :func:`stage_kind`."""
