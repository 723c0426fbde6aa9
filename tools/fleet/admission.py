"""Evaluate a ValidatingAdmissionPolicy's CEL on an admission request, as the API server does.

`matchConditions` first (a request that fails one is not judged), then `variables` in order,
then every validation over request/object/oldObject/namespaceObject/variables; an evaluation
error counts as a denial (the policy's failurePolicy is Fail). Used by lint (shuttle-admission)
and the tests; cel-python is the CEL implementation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import celpy

NAMESPACE_RESOURCE = "namespaces"


@dataclass(frozen=True)
class Request:
    """The parts of an admission request the policies read."""

    resource: str
    operation: str
    username: str
    namespace: dict | None = None     # namespaceObject
    obj: dict | None = None           # object
    old: dict | None = None           # oldObject


_PROGRAMS: dict[str, Any] = {}


def _program(expression: str) -> Any:
    if expression not in _PROGRAMS:
        env = celpy.Environment()
        _PROGRAMS[expression] = env.program(env.compile(expression))
    return _PROGRAMS[expression]


def _evaluate(expression: str, activation: dict) -> Any:
    return _program(expression).evaluate(activation)


def failed_validations(spec: dict, request: Request) -> list[int] | None:
    """Indexes of the validations that deny `request` (an evaluation error denies), or None when
    the policy does not match it (a matchCondition is false)."""
    req = {"resource": {"resource": request.resource}, "operation": request.operation,
           "userInfo": {"username": request.username}}
    activation = {"request": celpy.json_to_cel(req), "object": celpy.json_to_cel(request.obj),
                  "oldObject": celpy.json_to_cel(request.old),
                  "namespaceObject": celpy.json_to_cel(request.namespace)}
    for condition in spec.get("matchConditions") or []:
        if not bool(_evaluate(condition["expression"], activation)):
            return None
    variables = {}
    for variable in spec.get("variables") or []:
        activation["variables"] = celpy.celtypes.MapType(
            {celpy.celtypes.StringType(k): v for k, v in variables.items()})
        variables[variable["name"]] = _evaluate(variable["expression"], activation)
    activation["variables"] = celpy.celtypes.MapType({celpy.celtypes.StringType(k): v for k, v in variables.items()})
    failed = []
    for i, validation in enumerate(spec.get("validations") or []):
        try:
            result = _evaluate(validation["expression"], activation)
        except celpy.CELEvalError:
            result = None
        if not isinstance(result, celpy.celtypes.BoolType) or not bool(result):
            failed.append(i)
    return failed


def admitted(spec: dict, request: Request) -> bool:
    failed = failed_validations(spec, request)
    return failed is None or not failed
