"""Validation of rendered Kubernetes objects and Helm values against official schemas, offline.

Objects: the OpenAPI-derived JSON schemas of Kubernetes ``K8S_VERSION`` that ``kubernetes-validate`` ships, in
strict mode (unknown fields are errors). Helm values: the Dagster chart's ``values.schema.json`` (vendored under
``tests/schemas``, see its README), as Helm applies it (draft 7). Helm validates the values merged with the
chart's defaults, so the ``required`` lists are dropped here: every key we set is checked (types, enums, unknown
keys where the chart forbids them), keys we leave to the chart's defaults are not.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

K8S_VERSION = "1.33.0"
HELM_SCHEMA = Path(__file__).parent / "schemas" / "dagster-helm-values.schema.json"
CHART_K8S_DEFINITIONS = "https://kubernetesjsonschema.dev/v1.18.0/_definitions.json"


def assert_valid_object(obj: dict[str, Any]) -> None:
    """Raise ``kubernetes_validate.ValidationError`` naming the field when ``obj`` is not a valid object."""
    kubernetes_validate.validate(obj, K8S_VERSION, strict=True)


def _without_required(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _without_required(v) for k, v in schema.items() if k != "required"}
    if isinstance(schema, list):
        return [_without_required(v) for v in schema]
    return schema


def helm_values_validator() -> jsonschema.Draft7Validator:
    definitions = resources.files("kubernetes_validate").joinpath(
        f"kubernetes-json-schema/v{K8S_VERSION}-local-strict/_definitions.json"
    )
    contents = json.loads(definitions.read_text())
    # The chart points at "#/definitions/<name>"; these definitions live under "$defs" (and refer to each other so)
    k8s = Resource.from_contents({**contents, "definitions": contents["$defs"]}, default_specification=DRAFT7)
    registry = Registry().with_resources([(CHART_K8S_DEFINITIONS, k8s), (contents["$id"], k8s)])
    schema = _without_required(json.loads(HELM_SCHEMA.read_text()))
    return jsonschema.Draft7Validator(schema, registry=registry)


def helm_values_errors(values: dict[str, Any]) -> list[str]:
    """Every place ``values`` breaks the chart's schema, as 'path: message' (inside an anyOf, the most
    specific reason, e.g. the unknown key rather than 'not valid under any of the given schemas')."""
    errors = []
    for error in helm_values_validator().iter_errors(values):
        while error.context:  # the branch of the right type (not the "or null" one), deepest first
            error = max(error.context, key=lambda e: (e.validator != "type", len(e.absolute_path)))
        errors.append(f"{'/'.join(map(str, error.absolute_path))}: {error.message}")
    return errors
