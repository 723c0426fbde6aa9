"""Validate objects against real CustomResourceDefinition files, as the API server would.

Two parts, both read from the CRD's `openAPIV3Schema` for the served apiVersion:

1. Structural schema → JSON Schema (Draft 2020-12): objects are closed unless
   `x-kubernetes-preserve-unknown-fields` (unknown fields are errors under kubectl's default
   strict field validation); `nullable` admits null; `x-kubernetes-int-or-string`; OpenAPI 3.0
   boolean `exclusiveMinimum/Maximum`; int32/int64 ranges; `duration`/`date-time` formats as
   patterns; `x-kubernetes-list-type: set` as uniqueItems. The root `metadata` stays open:
   the API server validates it as ObjectMeta, not through the CRD schema.
2. CEL rules (`x-kubernetes-validations`) evaluated with cel-python against each node they are
   attached to. Transition rules (those using `oldSelf`) need a previous object and are skipped.

The CRD files are read from a folder given on the command line (never copied into the repo).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from jsonschema import Draft202012Validator

from .. import yamlio
from ..cache import parsed_once
from ..errors import InputError, Severity, SourceRef
from .objects import FastLoader
from .validate import Violation, schema_violations

CRD_API = "apiextensions.k8s.io/v1"
GO_DURATION = r"^-?([0-9]+(\.[0-9]*)?(ns|us|µs|ms|s|m|h))+\Z|^0\Z"
RFC3339 = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})\Z"
INT_RANGES = {"int32": (-2**31, 2**31 - 1), "int64": (-2**63, 2**63 - 1)}
_COPIED = ("pattern", "minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties",
           "multipleOf", "required", "uniqueItems")
_JUNCTORS = ("allOf", "anyOf", "oneOf")


# -- OpenAPI v3 structural schema → JSON Schema ------------------------------------------------

def to_json_schema(node: Any, *, closed: bool = True, root: bool = False) -> Any:
    """Convert one CRD schema node. `closed=False` inside value validations (allOf/anyOf/oneOf/not),
    which may only restate constraints and never declare fields."""
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    nullable = bool(node.get("nullable"))
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if node.get("x-kubernetes-int-or-string"):
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}] + ([{"type": "null"}] if nullable else [])
    elif isinstance(node.get("type"), str):
        out["type"] = [node["type"], "null"] if nullable else node["type"]
    if "enum" in node:
        out["enum"] = list(node["enum"]) + ([None] if nullable and None not in node["enum"] else [])
    for key in _COPIED:
        if key in node:
            out[key] = node[key]
    if isinstance(out.get("pattern"), str):
        out["pattern"] = go_end_anchors(out["pattern"])
    _bounds(node, out)
    _format(node, out)
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if "items" in node:
        out["items"] = to_json_schema(node["items"], closed=closed)
    props = node.get("properties")
    if isinstance(props, dict):
        out["properties"] = {}
        for name, sub in props.items():
            if root and name == "metadata":
                out["properties"][name] = {"type": "object"}  # ObjectMeta: validated by the API server itself
            else:
                out["properties"][name] = to_json_schema(sub, closed=closed)
    if "additionalProperties" in node:
        extra = node["additionalProperties"]
        out["additionalProperties"] = extra if isinstance(extra, bool) else to_json_schema(extra, closed=closed)
    elif closed and not preserve and (node.get("type") == "object" or isinstance(props, dict)) \
            and not node.get("x-kubernetes-embedded-resource"):
        out["additionalProperties"] = False
    for key in _JUNCTORS:
        if key in node:
            out[key] = [to_json_schema(sub, closed=False) for sub in node[key]]
    if "not" in node:
        out["not"] = to_json_schema(node["not"], closed=False)
    return out


def go_end_anchors(pattern: str) -> str:
    """A CRD pattern (Go RE2) with Go's meaning of `$` under Python's `re.search`: in Go `$` is the
    end of the text, in Python it also matches before a final newline, so `name\\n` would pass
    here and fail on the API server. Each `$` outside a character class becomes `$(?!\\n)`."""
    out, in_class, i = [], False, 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
        elif ch == "]" and in_class:
            in_class = False
        out.append("$(?!\\n)" if ch == "$" and not in_class else ch)
        i += 1
    return "".join(out)


def _bounds(node: dict, out: dict) -> None:
    """OpenAPI 3.0 `exclusiveMinimum: true` + `minimum` → JSON Schema 2020 numeric exclusive bounds."""
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if bound in node:
            if node.get(exclusive) is True:
                out[exclusive] = node[bound]
            else:
                out[bound] = node[bound]


def _format(node: dict, out: dict) -> None:
    """The formats the API server enforces that matter here, as plain constraints."""
    fmt = node.get("format")
    if fmt in INT_RANGES and node.get("type") == "integer":
        low, high = INT_RANGES[fmt]
        out.setdefault("minimum", low)
        out.setdefault("maximum", high)
    elif fmt == "duration" and "pattern" not in out:
        out["pattern"] = GO_DURATION
    elif fmt == "date-time" and "pattern" not in out:
        out["pattern"] = RFC3339


def is_opaque(node: Any, path: Iterable[str]) -> bool:
    """True when nothing looks into the subtree at `path` (so replacing it by {} is safe):
    it accepts anything, has no rules, and no CEL rule above it can read it."""
    path = list(path)
    for depth, part in enumerate(path):
        if any(_may_read(rule, path[depth:]) for rule in _rule_texts(node)):
            return False
        props = node.get("properties") if isinstance(node, dict) else None
        if not isinstance(props, dict) or part not in props:
            return False
        node = props[part]
    if not isinstance(node, dict):
        return False
    constraining = set(node) - {"description", "x-kubernetes-preserve-unknown-fields", "type"}
    return bool(node.get("x-kubernetes-preserve-unknown-fields")) and not constraining and \
        node.get("type") in (None, "object")


def _rule_texts(node: Any) -> list[str]:
    rules = node.get("x-kubernetes-validations") if isinstance(node, dict) else None
    return [f"{r.get('rule', '')} {r.get('messageExpression', '')}" for r in rules or [] if isinstance(r, dict)]


def _may_read(text: str, below: list[str]) -> bool:
    """Could a rule on an ancestor see the subtree at `below`? Conservative: yes if it names the
    first step, or uses `self` other than as `self.<field>` (e.g. `self.all(...)`, `size(self)`)."""
    if re.search(rf"\b{re.escape(below[0])}\b", text):
        return True
    return re.search(r"\bself\b(?!\s*\.\s*[A-Za-z_][A-Za-z0-9_]*\b(?!\s*\())", text) is not None


# -- CEL rules ---------------------------------------------------------------------------------

_CEL_ENV: Any = None


def _cel_environment(celpy: Any) -> Any:
    """One cel-python Environment for every rule: building its parser is what costs (~0.1 s each)."""
    global _CEL_ENV
    if _CEL_ENV is None:
        _CEL_ENV = celpy.Environment()
    return _CEL_ENV


@dataclass
class CelRule:
    rule: str
    message: str = ""
    message_expression: str = ""
    field_path: str = ""
    _program: Any = None
    _error: str = ""

    @property
    def is_transition(self) -> bool:
        return re.search(r"\boldSelf\b", self.rule) is not None

    def program(self) -> Any:
        """Compiled once, on first use (cel-python's parser is slow to build)."""
        if self._program is None and not self._error:
            import celpy  # local: only the CRD check needs it

            try:
                env = _cel_environment(celpy)
                self._program = env.program(env.compile(self.rule))
            except Exception as exc:  # noqa: BLE001 - any compile failure means "cannot check"
                self._error = f"{type(exc).__name__}: {exc}".strip()
        return self._program


@dataclass
class RuleNode:
    """The CEL rules of a schema, arranged like the schema but only where rules exist."""

    rules: list[CelRule] = field(default_factory=list)
    properties: dict[str, "RuleNode"] = field(default_factory=dict)
    items: "RuleNode | None" = None
    additional: "RuleNode | None" = None


def rule_tree(node: Any) -> RuleNode | None:
    if not isinstance(node, dict):
        return None
    tree = RuleNode()
    for entry in node.get("x-kubernetes-validations", []) or []:
        if isinstance(entry, dict) and isinstance(entry.get("rule"), str):
            tree.rules.append(CelRule(entry["rule"], str(entry.get("message", "") or ""),
                                      str(entry.get("messageExpression", "") or ""),
                                      str(entry.get("fieldPath", "") or "")))
    for name, sub in (node.get("properties") or {}).items():
        child = rule_tree(sub)
        if child is not None:
            tree.properties[name] = child
    tree.items = rule_tree(node.get("items"))
    extra = node.get("additionalProperties")
    tree.additional = rule_tree(extra) if isinstance(extra, dict) else None
    if tree.rules or tree.properties or tree.items or tree.additional:
        return tree
    return None


def _field_path(field_path: str) -> tuple[str | int, ...]:
    """`.spec.chart` / `.items[0]` / `['a.b']` → path parts (relative to the rule's node)."""
    parts: list[str | int] = []
    for match in re.finditer(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\['([^']*)'\]", field_path):
        name, index, quoted = match.groups()
        parts.append(int(index) if index is not None else (name if name is not None else quoted))
    return tuple(parts)


def cel_violations(tree: RuleNode | None, value: Any, path: tuple[str | int, ...] = ()) -> list[Violation]:
    """Evaluate every (non-transition) rule at every node of `value` it applies to."""
    if tree is None:
        return []
    out: list[Violation] = []
    for rule in tree.rules:
        if rule.is_transition:
            continue
        out += _evaluate(rule, value, path)
    if isinstance(value, dict):
        for key, sub in value.items():
            child = tree.properties.get(key, tree.additional if key not in tree.properties else None)
            out += cel_violations(child, sub, path + (key,))
    elif isinstance(value, list) and tree.items is not None:
        for index, item in enumerate(value):
            out += cel_violations(tree.items, item, path + (index,))
    return out


def _evaluate(rule: CelRule, value: Any, path: tuple[str | int, ...]) -> list[Violation]:
    import celpy

    program = rule.program()
    if program is None:
        return [Violation(path, f"CEL rule not supported by cel-python, not checked: {rule.rule}",
                          rule._error, severity=Severity.WARNING)]
    activation = {"self": celpy.json_to_cel(value)}
    try:
        result = program.evaluate(activation)
    except Exception as exc:  # noqa: BLE001 - the API server rejects an object whose rule errors
        result = exc
    if isinstance(result, Exception) or not isinstance(result, (bool, celpy.celtypes.BoolType)):
        return [Violation(path, f"CEL rule could not be evaluated ({result}): {rule.rule}",
                          "the rule to evaluate to true")]
    if bool(result):
        return []
    message = rule.message or f"failed rule: {rule.rule}"
    if rule.message_expression:
        try:
            env = celpy.Environment()
            text = env.program(env.compile(rule.message_expression)).evaluate(activation)
            message = str(text) or message
        except Exception:  # noqa: BLE001 - fall back to the static message
            pass
    return [Violation(path + _field_path(rule.field_path), f"CEL validation failed: {message}",
                      f"rule {rule.rule!r} to hold")]


# -- CRD files -----------------------------------------------------------------------------------

@dataclass
class CrdVersion:
    """One served version of one CRD: the converted JSON Schema and the CEL rule tree."""

    group: str
    kind: str
    version: str
    file: str
    openapi: dict
    validator: Draft202012Validator
    rules: RuleNode | None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    def violations(self, instance: Any) -> list[Violation]:
        """Schema violations first; CEL only on a schema-valid object (as the API server does)."""
        found = schema_violations(self.validator, instance)
        if found:
            return found
        return sorted(set(cel_violations(self.rules, instance)), key=lambda v: (tuple(map(str, v.path)), v.message))


def parsed_documents(text: str, docs_cache: Path | None) -> list[Any]:
    """The YAML documents of a CRD file. Building Python objects from YAML is most of a lint's
    CRD cost (multi-megabyte files): with `docs_cache`, kept as JSON (cache.parsed_once)."""
    return parsed_once(docs_cache, text, lambda t: yamlio.load_all_fast(t, FastLoader))


class CrdSet:
    """Every served version of every CRD in a folder, by (group, kind, version)."""

    def __init__(self, folder: Path, docs_cache: Path | None = None):
        self.folder = Path(folder)
        self.docs_cache = docs_cache
        self.versions: dict[tuple[str, str, str], CrdVersion] = {}
        content = hashlib.blake2b(digest_size=12)
        for path in sorted(self.folder.iterdir()):
            if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
                self._load_file(path, content)
        self.token = content.hexdigest()  # verdict-cache key part: same CRD bytes → same verdicts

    def _load_file(self, path: Path, content: Any) -> None:
        try:
            text = path.read_text(encoding="utf-8")
            content.update(path.name.encode() + b"\0" + text.encode())
            docs = parsed_documents(text, self.docs_cache)
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read CRD file: {exc}", SourceRef(str(path))) from None
        for doc in docs:
            if not isinstance(doc, dict) or doc.get("kind") != "CustomResourceDefinition":
                continue
            spec = doc.get("spec") or {}
            group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
            for version in spec.get("versions") or []:
                schema = ((version.get("schema") or {}).get("openAPIV3Schema"))
                if not version.get("served") or not isinstance(schema, dict):
                    continue
                converted = to_json_schema(schema, root=True)
                self.versions[(group, kind, version["name"])] = CrdVersion(
                    group, kind, version["name"], str(path), schema, Draft202012Validator(converted),
                    rule_tree(schema))

    def lookup(self, api_version: str, kind: str) -> CrdVersion | None:
        group, _, version = api_version.rpartition("/")
        return self.versions.get((group, kind, version))

    def served(self, api_version: str, kind: str) -> list[str]:
        """apiVersions served for this group/kind (empty when no CRD defines it)."""
        group = api_version.rpartition("/")[0]
        return sorted(f"{g}/{v}" for (g, k, v) in self.versions if g == group and k == kind)

    def defines_group(self, api_version: str) -> bool:
        group = api_version.rpartition("/")[0]
        return any(g == group for (g, _, _) in self.versions)


#: API groups of CRD kinds the renderer emits besides Flux's: validated only against real CRDs
#: (`--crds`), never by the built-in schemas of k8s-schema.
CRD_GROUPS = ("gateway.networking.k8s.io", "gateway.envoyproxy.io")


def crd_group(api_version: str) -> bool:
    return isinstance(api_version, str) and api_version.split("/", 1)[0] in CRD_GROUPS


class CrdSets:
    """Several CRD folders seen as one (Flux, Gateway API standard channel, Envoy Gateway)."""

    def __init__(self, sets: list[CrdSet]):
        self.sets = sets
        self.versions = {k: v for s in sets for k, v in s.versions.items()}
        self.token = hashlib.blake2b("\0".join(s.token for s in sets).encode(), digest_size=12).hexdigest()
        self.folder = Path("+".join(s.folder.name for s in sets))

    lookup = CrdSet.lookup
    served = CrdSet.served
    defines_group = CrdSet.defines_group


def load_crd_sets(folders: Any, docs_cache: Path | None = None) -> CrdSets:
    """One folder or a list of folders (`fleet lint --crds A --crds B`); see parsed_documents for `docs_cache`."""
    if isinstance(folders, (str, Path)):
        folders = [folders]
    return CrdSets([load_crds(Path(f), docs_cache) for f in folders])


_SETS: dict[tuple, CrdSet] = {}


def load_crds(folder: Path, docs_cache: Path | None = None) -> CrdSet:
    """The CRDs of `folder`, re-read only when a file in it changes."""
    folder = Path(folder).resolve()
    if not folder.is_dir():
        raise InputError("CRD folder not found", SourceRef(str(folder)))
    stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file())
    key = (str(folder), stamp)
    if key not in _SETS:
        _SETS[key] = CrdSet(folder, docs_cache)
    return _SETS[key]
