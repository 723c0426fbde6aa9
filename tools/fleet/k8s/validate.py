"""Schema errors → violations (cached by document digest) → findings at the rendered file:line.

A violation is position-free (JSON path, message, what was expected), so the verdict for one
document digest holds for every cluster that renders the same bytes; positions are computed
only for documents that actually have violations.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from ..errors import Finding, Severity
from .fastcheck import Predicate, Unsupported, compile_schema
from .objects import RenderedObject

MESSAGE_KEYWORD = "x-message"  # our schemas' own wording for combinator failures (oneOf, ...)


@dataclass(frozen=True)
class Violation:
    """One problem in one object: where (JSON path parts), what, and what was expected."""

    path: tuple[str | int, ...]
    message: str
    expected: str = ""
    hint: str = ""
    severity: Severity = Severity.ERROR


def json_path(parts: Iterable[str | int]) -> str:
    """`$.spec.chart.spec.sourceRef` / `$.spec.dependsOn[0].name`."""
    out = "$"
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _types(schema: Any) -> list[str]:
    if not isinstance(schema, dict):
        return []
    kind = schema.get("type")
    if isinstance(kind, list):
        return [str(k) for k in kind]
    if isinstance(kind, str):
        return [kind]
    out: list[str] = []
    for key in ("oneOf", "anyOf"):
        for sub in schema.get(key, []) or []:
            out += [t for t in _types(sub) if t not in out]
    return out


def _described(schema: Any, fallback: str) -> str:
    desc = schema.get("description") if isinstance(schema, dict) else None
    return f"{fallback} ({desc})" if desc and len(desc) < 120 else fallback


def describe(error: ValidationError) -> list[Violation]:
    """Violations for one jsonschema error, in words a config author understands."""
    path = tuple(error.absolute_path)
    v, value, schema = error.validator, error.validator_value, error.schema
    custom = schema.get(MESSAGE_KEYWORD) if isinstance(schema, dict) else None
    if custom and v in {"oneOf", "anyOf", "allOf", "not"}:
        return [Violation(path, custom, "")]
    if v == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted((schema.get("properties") or {}) if isinstance(schema, dict) else {})
        extras = sorted(k for k in error.instance if k not in allowed) or [None]
        expected = f"one of: {', '.join(allowed)}" if allowed else "no fields here"
        return [Violation(path + ((k,) if k is not None else ()), f"unknown field {k!r}", expected) for k in extras]
    if v == "unevaluatedProperties" and isinstance(error.instance, dict):
        return [Violation(path, error.message, "no other fields")]
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else str(value)
        return [Violation(path, f"missing required field {missing!r}", "the field to be present")]
    if v == "type":
        want = " or ".join(value) if isinstance(value, list) else str(value)
        return [Violation(path, f"wrong type: got {_type_name(error.instance)} {_short(error.instance)}", want)]
    if v == "enum":
        return [Violation(path, f"{_short(error.instance)} is not allowed", f"one of {', '.join(map(repr, value))}")]
    if v == "const":
        return [Violation(path, f"{_short(error.instance)} is not allowed", repr(value))]
    if v == "pattern":
        return [Violation(path, f"{_short(error.instance)} is not valid",
                          _described(schema, f"a string matching {value}"))]
    if v in {"oneOf", "anyOf"}:
        types = _types(schema)
        if types and _type_name(error.instance) not in types and not (
                _type_name(error.instance) == "integer" and "number" in types):
            return [Violation(path, f"wrong type: got {_type_name(error.instance)} {_short(error.instance)}",
                              " or ".join(types))]
        if error.context:
            deepest = max(error.context, key=lambda e: len(e.absolute_path))
            return describe(deepest)
        return [Violation(path, error.message, "")]
    if v == "not":
        return [Violation(path, f"{_short(error.instance)} is not allowed", _described(schema, "another value"))]
    if v == "propertyNames":
        return [Violation(path, f"invalid key {_short(error.instance)}", _described(value, "a valid key"))]
    if v in {"minLength", "maxLength", "minimum", "maximum", "minItems", "maxItems", "exclusiveMinimum",
             "exclusiveMaximum", "multipleOf", "uniqueItems", "minProperties", "maxProperties"}:
        return [Violation(path, error.message, f"{v} {value}")]
    if schema is False:  # a `false` schema (e.g. additionalProperties: false): nothing allowed here
        return [Violation(path, "field not allowed", "no such field")]
    return [Violation(path, error.message, _described(schema, ""))]


def schema_violations(validator: Draft202012Validator, instance: Any) -> list[Violation]:
    """All violations of `instance`, deterministic order (by path, then message)."""
    if fast_valid(validator, instance):
        return []
    out: list[Violation] = []
    for error in validator.iter_errors(instance):
        out += describe(error)
    return sorted(set(out), key=lambda x: (tuple(map(str, x.path)), x.message))


_PREDICATES: dict[int, tuple[Draft202012Validator, Predicate | None]] = {}


def fast_valid(validator: Draft202012Validator, instance: Any) -> bool:
    """True when the compiled predicate says valid; False means "ask jsonschema" (see fastcheck)."""
    entry = _PREDICATES.get(id(validator))
    if entry is None or entry[0] is not validator:
        try:
            predicate: Predicate | None = compile_schema(validator.schema, validator._registry)
        except Unsupported:
            predicate = None
        entry = (validator, predicate)
        _PREDICATES[id(validator)] = entry
    return entry[1] is not None and entry[1](instance)


class VerdictCache:
    """Verdicts by (what checked, document digest): one validation per distinct document."""

    def __init__(self) -> None:
        self._verdicts: dict[tuple[str, str], tuple[Violation, ...]] = {}
        self.hits = 0
        self.misses = 0
        self._store: Any = None   # a cache.ResultCache, while `persisted` holds one
        self._code = ""

    @contextmanager
    def persisted(self, store: Any, code: str) -> Iterator[None]:
        """Also keep verdicts in `store` (.cache/, keyed by the validating `code` too): a lint
        of a few changed clusters then validates only the documents no earlier lint saw."""
        self._store, self._code = store, code
        try:
            yield
        finally:
            self._store = None
            store.save()

    def get(self, key: str, obj: RenderedObject, compute: Callable[[Any], Sequence[Violation]]
            ) -> tuple[Violation, ...]:
        cache_key = (key, obj.digest)
        found = self._verdicts.get(cache_key)
        if found is None and self._store is not None:
            stored = self._store.get(self._stored_key(cache_key))
            if stored is not None:
                found = self._verdicts[cache_key] = tuple(
                    Violation(tuple(path), message, expected, hint, Severity(severity))
                    for path, message, expected, hint, severity in stored)
        if found is None:
            self.misses += 1
            found = tuple(compute(obj.obj))
            self._verdicts[cache_key] = found
            if self._store is not None:
                self._store.put(self._stored_key(cache_key), [[list(v.path), v.message, v.expected, v.hint,
                                                               v.severity.value] for v in found])
        else:
            self.hits += 1
        return found

    def _stored_key(self, cache_key: tuple[str, str]) -> str:
        return f"{self._code}:{cache_key[0]}:{cache_key[1]}"


def finding(check: str, obj: RenderedObject, violation: Violation) -> Finding:
    """A Finding at the rendered file and line of the offending field."""
    where = json_path(violation.path)
    message = f"{obj.describe()}: {violation.message} at {where}"
    if violation.expected:
        message += f"; expected {violation.expected}"
    return Finding(check, violation.severity, obj.source(violation.path), message, violation.hint,
                   {"apiVersion": obj.api_version, "kind": obj.kind, "name": obj.name,
                    "namespace": obj.namespace, "path": where, "expected": violation.expected})


def object_violation(obj: RenderedObject) -> Violation | None:
    """The basic shape every Kubernetes object needs before any schema applies."""
    if not isinstance(obj.obj, dict):
        return Violation((), f"not a Kubernetes object (a YAML {_type_name(obj.obj)})",
                         "a mapping with apiVersion, kind and metadata")
    for field in ("apiVersion", "kind"):
        if not isinstance(obj.obj.get(field), str) or not obj.obj.get(field):
            return Violation((), f"missing or invalid {field}", f"a non-empty string {field}")
    return None
