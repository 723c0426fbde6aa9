"""Evaluate a ValidatingAdmissionPolicy's CEL on an admission request, as the API server does.

`matchConstraints` first (the request's resource and operation against `resourceRules`, the
labels of its namespace against `namespaceSelector`; API groups are not compared), then
`matchConditions` (a request that fails either is not judged), then `variables` in order,
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


def _selected(selector: dict, labels: dict) -> bool:
    """A metav1.LabelSelector on a label map (an empty selector selects everything)."""
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        held = {"In": key in labels and labels[key] in values, "NotIn": key not in labels or labels[key] not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}[operator]
        if not held:
            return False
    return True


def matched(spec: dict, request: Request) -> bool:
    """Whether `matchConstraints` select the request: one resourceRule names its resource and
    operation, and the namespace it lands in (for a Namespace, the object itself) carries the
    labels `namespaceSelector` asks for."""
    constraints = spec.get("matchConstraints") or {}
    rules = constraints.get("resourceRules")
    if rules is not None and not any(
            (request.resource in rule.get("resources", []) or "*" in rule.get("resources", []))
            and (request.operation in rule.get("operations", []) or "*" in rule.get("operations", []))
            for rule in rules):
        return False
    selector = constraints.get("namespaceSelector")
    if selector:
        if request.resource == NAMESPACE_RESOURCE:
            namespace = request.old if request.operation == "DELETE" else request.obj
        else:
            namespace = request.namespace
        labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
        return _selected(selector, labels)
    return True


def failed_validations(spec: dict, request: Request) -> list[int] | None:
    """Indexes of the validations that deny `request` (an evaluation error denies), or None when
    the policy does not match it (matchConstraints do not select it, or a matchCondition is false)."""
    if not matched(spec, request):
        return None
    namespace = ((request.namespace or {}).get("metadata") or {}).get("name", "")
    req = {"resource": {"resource": request.resource}, "operation": request.operation,
           "userInfo": {"username": request.username}, "namespace": namespace}
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


def validation_lines(text: str) -> tuple[int, list[int]]:
    """1-based line of the ValidatingAdmissionPolicy's `validations:` in a manifests file, and of
    each validation item (`- expression:`) under it: where a wrong decision is reported."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "kind: ValidatingAdmissionPolicy"), 0)
    at = next((i for i in range(start, len(lines)) if lines[i].strip() == "validations:"), start)
    items = []
    for i in range(at + 1, len(lines)):
        if lines[i].startswith("---") or (lines[i] and not lines[i].startswith((" ", "#"))):
            break
        if lines[i].lstrip().startswith("- expression:"):
            items.append(i + 1)
    return at + 1, items


def wrong_decisions(spec: dict, table) -> list[tuple[str, bool, list[int] | None]]:
    """(what, expected admission, failed validation indexes) of every row of `table`
    ((what, request, expected) rows) the policy `spec` decides wrongly."""
    out = []
    for what, request, expected in table:
        failed = failed_validations(spec, request)
        if (failed is None or not failed) != expected:
            out.append((what, expected, failed))
    return out


def record_wrong_decisions(found: dict, name: str, cluster: str, decisions, at: int, items: list[int]) -> None:
    """Add a rendered policy's wrong decisions to `found` ((line, message) → clusters): a wrong
    denial at the first validation that fails, a wrong admission at `validations:`."""
    for what, expected, failed in decisions:
        line = items[failed[0]] if expected and failed and failed[0] < len(items) else at
        verdict = "must be admitted but is denied" if expected else "must be denied but is admitted"
        found.setdefault((line, f"{name}: {what} {verdict}"), []).append(cluster)
