"""JSON Schema validation of input documents, with errors at file:line:col.

Schemas live in `fleet/schemas/*.json` (one per input kind) and are compiled once.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any, Iterable

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from . import urls, yamlio
from .errors import InputError, SourceRef, clip

#: The `format`s input schemas assert (JSON Schema only annotates formats unless given a checker):
#: name → (function returning why a value is wrong or None, what is expected in words).
FORMATS = {
    "endpoint-url": (urls.endpoint_problem, "a URL with a valid host name or IP address, a valid port, and no "
                                            "credentials (no user:password@, no token in the query)"),
    "ipv4-cidr": (urls.cidr_problem, "an IPv4 network in CIDR notation, e.g. 10.110.0.0/20 (octets 0-255, "
                                     "no host bits set)"),
}


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    for name, (problem, _expected) in FORMATS.items():
        def check(value: Any, problem=problem) -> bool:
            if not isinstance(value, str):
                return True
            reason = problem(value)
            if reason:
                raise ValueError(reason)
            return True
        checker.checks(name, raises=ValueError)(check)
    return checker


@lru_cache(maxsize=None)
def _registry() -> Registry:
    resources_ = []
    for entry in resources.files("fleet.schemas").iterdir():
        if entry.name.endswith(".schema.json"):
            doc = json.loads(entry.read_text(encoding="utf-8"))
            resources_.append((entry.name, Resource.from_contents(doc)))
    return Registry().with_resources(resources_)


@lru_cache(maxsize=None)
def validator(kind: str) -> Draft202012Validator:
    """The compiled validator for `kind` (e.g. "cluster" → cluster.schema.json)."""
    schema = _registry().contents(f"{kind}.schema.json")
    return Draft202012Validator(schema, registry=_registry(), format_checker=_format_checker())


def _json_path(parts: Iterable[Any]) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _locate(doc: Any, parts: list[Any], at_value: bool) -> tuple[int, int]:
    """Line/col of the deepest existing node on the path: the key, or with `at_value` a scalar value."""
    node, pos = doc, yamlio.position(doc)
    for i, part in enumerate(parts):
        try:
            last = i == len(parts) - 1
            child = node[part]
            pos = yamlio.position(node, part, value=at_value and last and not isinstance(child, (dict, list)))
            node = child
        except (KeyError, IndexError, TypeError):
            break
    return pos


def _describe(error: ValidationError) -> tuple[str, str]:
    """(message, expected) in words a config author understands."""
    v = error.validator
    if v == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"unknown field {', '.join(map(clip, extra[:5]))}", f"one of: {allowed}"
    if v == "type":
        want = error.validator_value
        want = " or ".join(want) if isinstance(want, list) else want
        return f"wrong type: got {type(error.instance).__name__} {clip(error.instance)}", want
    if v == "required":
        return error.message, "the field to be present"
    if v == "pattern":
        # `x-expected` (a schema annotation validators ignore) says in words what a long pattern means.
        return f"{clip(error.instance)} is not valid", error.schema.get("x-expected") or f"a string matching {error.validator_value}"
    if v == "enum":
        return f"{clip(error.instance)} is not allowed", f"one of {error.validator_value}"
    if v == "not" and error.validator_value == {} and error.absolute_path:
        return f"field {clip(error.absolute_path[-1])} is not read here", str(error.schema.get("description", "no such field"))
    if v == "format" and error.validator_value in FORMATS:
        # A URL is not quoted back: it may carry the very credential it is refused for.
        shown = "URL" if error.validator_value == "endpoint-url" else clip(error.instance)
        return f"{shown} is not valid: {error.cause}", FORMATS[error.validator_value][1]
    return clip(error.message, 300), str(error.schema.get("description", ""))


def _locate_indexed(ix: yamlio.Indexed, parts: list[Any], at_value: bool) -> tuple[int, int]:
    path = tuple(parts)
    while path and path not in ix.keys:
        path = path[:-1]
    child = ix.data
    try:
        for part in path:
            child = child[part]
    except (KeyError, IndexError, TypeError):
        child = None
    ref = ix.value_ref(path) if at_value and path == tuple(parts) and not isinstance(child, (dict, list)) \
        else ix.key_ref(path)
    return (ref.line, ref.col)


def validate(doc: Any, kind: str, name: str) -> list[InputError]:
    """All schema errors of `doc` (a ruamel node or a yamlio.Indexed) as InputErrors in file `name`."""
    errors = []
    indexed = isinstance(doc, yamlio.Indexed)
    data = doc.data if indexed else yamlio.plain(doc)
    for error in sorted(validator(kind).iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        parts = list(error.absolute_path)
        if error.validator == "additionalProperties":
            extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
            if extra:
                parts = parts + [extra[0]]
        at_value = error.validator not in ("additionalProperties", "required")
        line, col = _locate_indexed(doc, parts, at_value) if indexed else _locate(doc, parts, at_value)
        message, expected = _describe(error)
        errors.append(InputError(message, SourceRef(name, line, col), path=_json_path(error.absolute_path),
                                 expected=expected))
    return errors
