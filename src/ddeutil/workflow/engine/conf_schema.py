"""The JSON Schema of a conf file, for editors.

:func:`yaml_schema` returns a JSON Schema (draft 2020-12) of a conf file - a
mapping of template name to a pipeline or a schedule template - generated from
the pydantic models, so an editor (VS Code's YAML extension, IntelliJ) can
validate and complete pipeline files. ``workflow schema`` prints it.
"""

from __future__ import annotations

from typing import Any

from .pipeline import Pipeline
from .schema import SCHEDULE_SCHEMA
from .stages.base import Retry

__all__ = ["yaml_schema"]


def yaml_schema() -> dict[str, Any]:
    """JSON Schema of a conf file: template name -> pipeline or schedule template."""
    # The stages' default `retry` is a Retry made without validation (so that
    # loading a stage does not build the Retry validator); its JSON default
    # needs the serializer, built here.
    Retry.model_rebuild()
    pipeline = Pipeline.model_json_schema(by_alias=True, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = pipeline.pop("$defs", {})
    pipeline["properties"].pop("name", None)
    pipeline["required"] = ["type"]
    pipeline["properties"] = {
        "type": {
            "type": "string",
            "description": "ddeutil.workflow.pipeline.Pipeline, pipeline.Pipeline or Pipeline",
            "pattern": "(^|\\.)Pipeline$",
        },
        **pipeline["properties"],
    }
    pipeline["title"] = "Pipeline template"
    on_template = {
        **SCHEDULE_SCHEMA,
        "title": "On template",
        "properties": {
            "type": {"type": "string", "description": "on.On or On", "pattern": "(^|\\.)On$"},
            **SCHEDULE_SCHEMA["properties"],
        },
        "required": ["type"],
    }
    defs["PipelineTemplate"] = pipeline
    defs["OnTemplate"] = on_template
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "ddeutil-workflow conf file",
        "description": "Each top-level key is a template named by that key.",
        "type": "object",
        "additionalProperties": {
            "anyOf": [{"$ref": "#/$defs/PipelineTemplate"}, {"$ref": "#/$defs/OnTemplate"}]
        },
        "$defs": defs,
    }
