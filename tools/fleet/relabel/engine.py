"""Relabeling semantics: one rule type, its validation, and one `apply(rules, labels)`.

This module *is* what a relabel rule does, read the way Prometheus' `model/relabel/relabel.go`
reads: a `Rule` (validated like the real agent validates it), and a switch over the actions.
Two flavours, because the agents disagree in places that matter for what leaves a cluster:

* ``"prometheus"`` — current Prometheus and Grafana Alloy (`prometheus.relabel`,
  `discovery.relabel`): regexes are ``^(?s:re)$`` (``.`` matches a newline), labels form a set
  (setting a label to "" deletes it; ``labelmap`` walks them in the order of Prometheus'
  `labels.Builder.Range`, see `_Builder`; ``labelmap`` renames with Go's ``ReplaceAllString`` on the anchored pattern, so a regex
  escaping the anchors renames part of a name, see `replace_all`; Alloy's ``discovery.relabel``
  walks added labels again, see `apply_alloy_targets`), ``replace`` ignores an expanded
  ``target_label`` that is not a valid label name,
  ``hashmod`` is md5-based.
* ``"vmagent"`` — vmagent v1.150.0 (tools/upstream.lock; `vmagent.py` holds what it adds):
  labels are a *list* in arrival order whose entries are updated in place, an empty value
  stays in the list (and is still copied by ``labelmap``) until the end of the rule list, a
  rule list that removes every entry drops the series at once, ``hashmod`` is xxhash64, any
  ``target_label`` is written as expanded, actions are lower-cased. Whether a regex matches is
  decided by ``PromRegex`` (dotall, anchors at the edges dropped), its groups by the non-dotall
  ``^(?:re)$`` (missing there, a ``replace`` writes the value itself); a regex that simplifies
  to ``.*`` is the default (fast paths: ``replace`` copies/sets without matching, ``keep``
  keeps and ``drop`` drops everything). ``if:`` selectors, ``{{label}}`` templates, graphite
  and vmagent's own actions (``replace_all``, ``labelmap_all``, ``keep_metrics``, ...) too.

Regexes are RE2 (google-re2), never Python's `re`: `(?i)` inside a group, `\\Z` and friends
mean different things there. `$1`, `${1}`, `$name` and `$$` in ``replacement`` and
``target_label`` expand exactly like Go's ``regexp.Expand`` (``$1x`` is the group named
``1x``, i.e. empty).

Sources: prometheus/prometheus model/relabel/relabel.go (Validate, relabel), grafana/alloy
internal/component/common/relabel/relabel.go, VictoriaMetrics lib/promrelabel/{config,relabel,
if_expression,graphite}.go and lib/regexutil (v1.150.0), each checked against the real binaries (see tests/test_relabel_differential.py).
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import re2

from ..errors import InputError, SourceRef
from . import vmagent
from .xxhash import xxh64

Flavor = Literal["prometheus", "vmagent"]
FLAVORS: tuple[str, ...] = ("prometheus", "vmagent")

ACTIONS: frozenset[str] = frozenset({
    "replace", "keep", "drop", "keepequal", "dropequal", "hashmod", "labelmap", "labeldrop",
    "labelkeep", "lowercase", "uppercase", "keep_if_equal", "drop_if_equal",
    "replace_all", "labelmap_all", "keep_metrics", "drop_metrics", "keep_if_contains",
    "drop_if_contains", "graphite",
})
#: vmagent's own actions (v1.150.0 `parseRelabelConfig`); Prometheus has none of them.
VMAGENT_ONLY: frozenset[str] = frozenset({
    "keep_if_equal", "drop_if_equal", "replace_all", "labelmap_all", "keep_metrics", "drop_metrics",
    "keep_if_contains", "drop_if_contains", "graphite",
})
#: Actions each agent accepts (vmagent v1.150.0 accepts every one).
FLAVOR_ACTIONS: dict[str, frozenset[str]] = {
    "prometheus": ACTIONS - VMAGENT_ONLY,
    "vmagent": ACTIONS,
}

_FIELDS = ("source_labels", "separator", "regex", "modulus", "target_label", "replacement", "action")
#: vmagent's extra fields: `if` series selectors, graphite's `match` and `labels`.
_VMAGENT_FIELDS = _FIELDS + ("if", "match", "labels")

DEFAULT_SEPARATOR = ";"
DEFAULT_REGEX = "(.*)"
DEFAULT_REPLACEMENT = "$1"

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_LABEL_NAME = re2.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$", _RE2_OPTIONS)
# Prometheus' `relabelTarget`: what a templated target_label / labelmap replacement may look like.
_RELABEL_TARGET = re2.compile(r"^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$", _RE2_OPTIONS)


def is_valid_label_name(name: str) -> bool:
    """Prometheus' (legacy) label-name rule `[a-zA-Z_][a-zA-Z0-9_]*`."""
    return _LABEL_NAME.search(name) is not None


# --------------------------------------------------------------------------------------------
# The rule


@dataclass(frozen=True)
class Rule:
    """One relabel rule with the agent's defaults filled in (see `rule_from_mapping`)."""

    action: str = "replace"
    source_labels: tuple[str, ...] = ()
    separator: str = DEFAULT_SEPARATOR
    regex: str = DEFAULT_REGEX
    target_label: str | None = None
    replacement: str = DEFAULT_REPLACEMENT
    modulus: int | None = None
    source: SourceRef | None = field(default=None, compare=False)
    #: whether `regex` was written (vmagent takes fast paths on an unset regex)
    regex_set: bool = field(default=False, compare=False, repr=False)
    #: the agent whose rules these are: decides the anchoring (`(?s:` or `(?:`) by default
    flavor: str = field(default="prometheus", compare=False, repr=False)
    #: vmagent's extra fields as written (`if`, graphite `match`/`labels`): part of the rule
    extra: tuple = ()
    #: vmagent v1.150 only: the regex as vmagent holds it, `if`, graphite templates (`VmParts`)
    vm: Any = field(default=None, compare=False, repr=False)
    _patterns: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    def __post_init__(self) -> None:
        self.pattern(self.flavor)  # compile now so a bad regex fails where the rule is built

    def pattern(self, flavor: str | None = None) -> Any:
        """The compiled, anchored RE2 pattern for `flavor` (default: the rule's own); for a
        vmagent rule, vmagent's `^(?:re)$` (anchors at the ends removed first): its groups."""
        flavor = flavor or self.flavor
        if flavor == "vmagent" and self.vm is not None:
            return self.vm.regex.anchored
        compiled = self._patterns.get(flavor)
        if compiled is None:
            compiled = self._patterns[flavor] = _compile(self.regex, flavor, self.source)
        return compiled

    def matches(self, value: str, flavor: str | None = None) -> bool:
        """Fully anchored RE2 match of `value` against `regex`, as the rule's agent does it
        (vmagent: its `PromRegex`, where `.` matches a newline)."""
        if (flavor or self.flavor) == "vmagent" and self.vm is not None:
            return self.vm.regex.matches(value)
        return self.pattern(flavor).search(value) is not None

    @property
    def if_expr(self) -> Any:
        """vmagent's `if:` selectors (`vmagent.IfExpr`), or None."""
        return self.vm.if_expr if self.vm is not None else None

    def match(self, value: str, flavor: str | None = None) -> Any:
        """The RE2 match object (or None); its spans feed `expand`."""
        return self.pattern(flavor).search(value)

    def to_mapping(self) -> dict[str, Any]:
        """The rule as a relabel_config mapping (only non-default fields), e.g. for YAML dumps."""
        out: dict[str, Any] = {"action": self.action}
        if self.source_labels:
            out["source_labels"] = list(self.source_labels)
        if self.separator != DEFAULT_SEPARATOR:
            out["separator"] = self.separator
        if self.regex_set or self.regex != DEFAULT_REGEX:
            out["regex"] = self.regex
        if self.target_label:
            out["target_label"] = self.target_label
        if self.replacement != DEFAULT_REPLACEMENT:
            out["replacement"] = self.replacement
        if self.modulus:
            out["modulus"] = self.modulus
        for key, value in self.extra:
            out[key] = list(value) if isinstance(value, tuple) and key != "labels" else (
                dict(value) if key == "labels" else value)
        return out


@dataclass(frozen=True)
class VmParts:
    """What vmagent v1.150 makes of a rule beyond the Prometheus fields."""

    regex: Any                       # vmagent.VmRegex
    if_expr: Any = None              # vmagent.IfExpr
    raw_action: str = ""             # as written (upstream compares it, unlowered, once)
    graphite_match: tuple = ()       # graphite `match` parts
    graphite_labels: tuple = ()      # (target label, replace-template parts), by name


def _anchored(regex: str, flavor: str) -> str:
    """Anchor by string concatenation, exactly as the agents do (so `a)|(b` behaves alike)."""
    return ("^(?s:" if flavor == "prometheus" else "^(?:") + regex + ")$"


def plain_positions(regex: str) -> Iterator[int]:
    """Indexes of the characters of `regex` outside escapes and character classes (a `]` first
    in a class is literal, as in RE2): where a `(`, `)` or `(?<` is syntax."""
    i, in_class = 0, False
    while i < len(regex):
        c = regex[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if regex.startswith("[^]", i) or regex.startswith("[]", i):
                i += 2 if regex[i + 1] == "]" else 3
                continue
        else:
            yield i
        i += 1


def _has_unescaped(regex: str, needle: str) -> bool:
    """Whether `needle` occurs in `regex` outside escapes and character classes."""
    return any(regex.startswith(needle, i) for i in plain_positions(regex))


def _has_byte_escape(regex: str) -> bool:
    """`\\C` (any byte): RE2 accepts it, Go's regexp (both agents) rejects it."""
    i = 0
    while i < len(regex) - 1:
        if regex[i] == "\\":
            if regex[i + 1] == "C":
                return True
            i += 2
            continue
        i += 1
    return False


def _compile(regex: str, flavor: str, source: SourceRef | None) -> Any:
    if _has_byte_escape(regex):
        raise InputError(f"error parsing regexp: invalid escape sequence: `\\C` in {_goquote(regex)}",
                         source, expected="an RE2 regular expression Go accepts")
    try:
        return re2.compile(_anchored(regex, flavor), _RE2_OPTIONS)
    except re2.error as exc:
        raise InputError(f"error parsing regexp: {_re2_message(exc)}: `{_anchored(regex, flavor)}`",
                         source, expected="an RE2 regular expression") from None


def _re2_message(exc: Exception) -> str:
    msg = exc.args[0] if exc.args else str(exc)
    if isinstance(msg, bytes):
        msg = msg.decode("utf-8", "replace")
    return str(msg)


# --------------------------------------------------------------------------------------------
# Building a rule from YAML data, validated like the agent validates it


def rule_from_mapping(data: Mapping[str, Any], source: SourceRef | None = None,
                      flavor: Flavor = "prometheus") -> Rule:
    """Build a `Rule` from one relabel_config mapping, rejecting what the agent rejects.

    Raises `InputError` (with `source`) carrying a message close to the agent's own.
    """
    if flavor not in FLAVORS:
        raise ValueError(f"unknown relabel flavor {flavor!r}")
    if not isinstance(data, Mapping):
        raise InputError("relabel config must be a mapping", source,
                         expected="a mapping with source_labels, regex, action, ...")
    fields = _read_fields(data, source, flavor)
    if flavor == "prometheus":
        return _prometheus_rule(fields, source)
    return _vmagent_rule(fields, source)


def _fail(message: str, source: SourceRef | None, expected: str = "") -> InputError:
    return InputError(message, source, expected=expected)


def _read_fields(data: Mapping[str, Any], source: SourceRef | None, flavor: str) -> dict[str, Any]:
    """Type-check each field (YAML decoding stage: unknown fields, wrong types)."""
    type_name = "relabel.plain" if flavor == "prometheus" else "promrelabel.RelabelConfig"
    out: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        fields = _FIELDS if flavor == "prometheus" else _VMAGENT_FIELDS
        if key not in fields:
            raise _fail(f"field {key} not found in type {type_name}", source,
                        expected="one of " + ", ".join(fields))
        if key in ("if", "labels"):
            out[key] = value
            continue
        out[key] = _read_field(key, value, source, flavor)
    return out


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _read_field(key: str, value: Any, source: SourceRef | None, flavor: str) -> Any:
    if value is None:
        return None
    if key == "source_labels":
        if not isinstance(value, (list, tuple)):
            raise _fail(f"cannot unmarshal {type(value).__name__} into source_labels", source,
                        expected="a list of label names")
        names = []
        for item in value:
            if isinstance(item, (list, tuple, Mapping)) or item is None:
                raise _fail("source_labels must be a list of strings", source)
            name = _scalar_text(item)
            if flavor == "prometheus" and not is_valid_label_name(name):
                raise _fail(f"{_goquote(name)} is not a valid label name", source)
            names.append(name)
        return tuple(names)
    if key == "modulus":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _fail(f"cannot unmarshal {value!r} into modulus", source,
                        expected="a non-negative integer")
        return int(value)
    if key == "regex" and isinstance(value, (list, tuple)):
        if flavor == "prometheus":
            raise _fail("cannot unmarshal !!seq into string (regex)", source,
                        expected="a single regex string")
        return "|".join(_scalar_text(v) if v is not None else "null" for v in value)
    if isinstance(value, (list, tuple, Mapping)):
        raise _fail(f"cannot unmarshal a collection into {key}", source, expected="a string")
    return _scalar_text(value)


def _prometheus_rule(f: dict[str, Any], source: SourceRef | None) -> Rule:
    """Defaults and `Config.Validate()` of Prometheus (null resets a field to its zero value)."""
    def get(key: str, default: Any) -> Any:
        return f[key] if key in f else default

    raw_action = get("action", "replace")
    if raw_action is None:
        raise _fail("relabel action cannot be empty", source)
    action = raw_action.lower()
    if action not in FLAVOR_ACTIONS["prometheus"]:
        raise _fail(f"unknown relabel action {_goquote(raw_action)}", source,
                    expected=", ".join(sorted(FLAVOR_ACTIONS["prometheus"])))
    regex_set = "regex" in f
    regex = get("regex", DEFAULT_REGEX) or ""
    rule = Rule(action=action, source_labels=get("source_labels", ()) or (),
                separator=get("separator", DEFAULT_SEPARATOR) or "", regex=regex,
                target_label=get("target_label", None) or None,
                replacement=get("replacement", DEFAULT_REPLACEMENT) or "",
                modulus=get("modulus", None) or None, source=source, regex_set=regex_set,
                flavor="prometheus")
    _validate_prometheus(rule, f, source)
    return rule


def _validate_prometheus(r: Rule, f: dict[str, Any], source: SourceRef | None) -> None:
    a, target = r.action, r.target_label or ""
    if a == "hashmod" and not r.modulus:
        raise _fail("relabel configuration for hashmod requires non-zero modulus", source)
    if a in ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal") and not target:
        raise _fail(f"relabel configuration for {a} action requires 'target_label' value", source)
    bad_target = _fail(f"{_goquote(target)} is invalid 'target_label' for {a} action", source,
                       expected="a label name ([a-zA-Z_][a-zA-Z0-9_]*, $1/${name} allowed for replace)")
    if a == "replace" and "$" not in target and not is_valid_label_name(target):
        raise bad_target
    if a == "replace" and "$" in target and _RELABEL_TARGET.search(target) is None:
        raise bad_target
    if a in ("lowercase", "uppercase", "keepequal", "dropequal", "hashmod") and not is_valid_label_name(target):
        raise bad_target
    if a in ("lowercase", "uppercase", "keepequal", "dropequal") and r.replacement != DEFAULT_REPLACEMENT:
        raise _fail(f"'replacement' can not be set for {a} action", source)
    if a == "labelmap" and _RELABEL_TARGET.search(r.replacement) is None:
        raise _fail(f"{_goquote(r.replacement)} is invalid 'replacement' for {a} action", source)
    if a in ("keepequal", "dropequal") and (
            "regex" in f or r.modulus or r.separator != DEFAULT_SEPARATOR
            or r.replacement != DEFAULT_REPLACEMENT):
        raise _fail(f"{a} action requires only 'source_labels' and `target_label`, and no other fields",
                    source)
    if a in ("labeldrop", "labelkeep") and (
            f.get("source_labels") is not None or target or r.modulus
            or r.separator != DEFAULT_SEPARATOR or r.replacement != DEFAULT_REPLACEMENT):
        raise _fail(f"{a} action requires only 'regex', and no other fields", source)


def _vmagent_rule(f: dict[str, Any], source: SourceRef | None) -> Rule:
    """Defaults and checks of vmagent v1.150.0 `parseRelabelConfig` (null keeps the default),
    in its order: the regex compiles first, then each action's own requirements."""
    raw_regex = f.get("regex")  # `regex:` (null) leaves vmagent's default, like an absent key
    regex_set = raw_regex is not None
    raw_action = f.get("action") or ""
    action = raw_action.lower() or "replace"
    vm_regex = vmagent.compile_vm_regex(raw_regex, raw_action, source)
    if_expr = vmagent.parse_if(f.get("if"), source)
    sources = tuple(f.get("source_labels") or ())
    target = f.get("target_label") or ""
    modulus = f.get("modulus") or 0
    replacement_set = f.get("replacement") is not None
    match_text = f.get("match") or ""
    labels = _graphite_labels(f.get("labels"), source)
    _check_vmagent_action(action, sources, target, modulus, regex_set, replacement_set, if_expr,
                          raw_regex, match_text, labels, source)
    if action != "graphite" and match_text:
        raise _fail(f"`match` config cannot be applied to `action={action}`; it is applied only to "
                    "`action=graphite`", source)
    if action != "graphite" and labels:
        raise _fail(f"`labels` config cannot be applied to `action={action}`; it is applied only to "
                    "`action=graphite`", source)
    extra: list[tuple[str, Any]] = []
    if if_expr is not None:
        extra.append(("if", if_expr.texts if isinstance(f.get("if"), (list, tuple)) else if_expr.texts[0]))
    if match_text:
        extra.append(("match", match_text))
    if f.get("labels") is not None:
        extra.append(("labels", tuple(sorted(labels.items()))))
    parts = VmParts(regex=vm_regex, if_expr=if_expr, raw_action=raw_action,
                    graphite_match=vmagent.graphite_match_parts(match_text) if match_text else (),
                    graphite_labels=tuple((name, vmagent.graphite_replace_parts(t))
                                          for name, t in sorted(labels.items())))
    if action in ("keep_metrics", "drop_metrics"):  # upstream rewrites them so
        action, sources = action.split("_")[0], ("__name__",)
    return Rule(action=action, source_labels=sources,
                separator=f["separator"] if f.get("separator") is not None else DEFAULT_SEPARATOR,
                regex=DEFAULT_REGEX if raw_regex is None else raw_regex, target_label=target or None,
                replacement=f["replacement"] if replacement_set else DEFAULT_REPLACEMENT,
                modulus=modulus or None, source=source, regex_set=regex_set, flavor="vmagent",
                extra=tuple(extra), vm=parts)


def _graphite_labels(value: Any, source: SourceRef | None) -> dict[str, str]:
    """`labels:` (graphite): a mapping of target label to `$1`-style template."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _fail("cannot unmarshal `labels` into map[string]string", source,
                    expected="a mapping of label name to template")
    out = {}
    for key, item in value.items():
        if isinstance(item, (list, tuple, Mapping)):
            raise _fail(f"cannot unmarshal `labels.{key}` into string", source)
        out[_scalar_text(key)] = "" if item is None else _scalar_text(item)
    return out


_GRAPHITE_DOC = "; see https://docs.victoriametrics.com/victoriametrics/vmagent/#graphite-relabeling"


def _check_vmagent_action(action: str, sources: tuple[str, ...], target: str, modulus: int,
                          regex_set: bool, replacement_set: bool, if_expr: Any, raw_regex: str | None,
                          match_text: str, labels: dict, source: SourceRef | None) -> None:
    """Each action's requirements, with vmagent's words."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise _fail(message, source)

    a = action
    if a == "graphite":
        need(bool(match_text), "missing `match` for `action=graphite`" + _GRAPHITE_DOC)
        need(bool(labels), "missing `labels` for `action=graphite`" + _GRAPHITE_DOC)
        need(not sources, "`source_labels` cannot be used with `action=graphite`" + _GRAPHITE_DOC)
        need(not target, "`target_label` cannot be used with `action=graphite`" + _GRAPHITE_DOC)
        need(not replacement_set, "`replacement` cannot be used with `action=graphite`" + _GRAPHITE_DOC)
        need(not regex_set, "`regex` cannot be used for `action=graphite`" + _GRAPHITE_DOC)
    elif a == "replace":
        need(bool(target), "missing `target_label` for `action=replace`")
    elif a == "replace_all":
        need(bool(sources), "missing `source_labels` for `action=replace_all`")
        need(bool(target), "missing `target_label` for `action=replace_all`")
    elif a in ("keep_if_contains", "drop_if_contains"):
        need(bool(target), f"`target_label` must be set for `action={a}`")
        need(bool(sources), f"`source_labels` must contain at least a single entry for `action={a}`")
        need(not regex_set, f"`regex` cannot be used for `action={a}`")
    elif a in ("keep_if_equal", "drop_if_equal"):
        need(len(sources) >= 2, f"`source_labels` must contain at least two entries for `action={a}`; "
                                f"got {_goquote_list(sources)}")
        need(not target, f"`target_label` cannot be used for `action={a}`")
        need(not regex_set, f"`regex` cannot be used for `action={a}`")
    elif a in ("keepequal", "dropequal"):
        need(bool(target), f"missing `target_label` for `action={a}`")
        need(not regex_set, f"`regex` cannot be used for `action={a}`")
    elif a in ("keep", "drop"):
        need(bool(sources) or if_expr is not None, f"missing `source_labels` for `action={a}`")
    elif a == "hashmod":
        need(bool(sources), "missing `source_labels` for `action=hashmod`")
        need(bool(target), "missing `target_label` for `action=hashmod`")
        need(modulus >= 1, f"unexpected `modulus` for `action=hashmod`: {modulus}; must be greater than 0")
    elif a in ("keep_metrics", "drop_metrics"):
        need(bool(raw_regex) or if_expr is not None, f"`regex` must be non-empty for `action={a}`")
        need(not sources, f"`source_labels` must be empty for `action={a}`; got {_goquote_list(sources)}")
    elif a in ("uppercase", "lowercase"):
        need(bool(sources), f"missing `source_labels` for `action={a}`")
        need(bool(target), f"missing `target_label` for `action={a}`")
    elif a not in ("labelmap", "labelmap_all", "labeldrop", "labelkeep"):
        raise _fail(f"unknown `action` {_goquote(a)}", source,
                    expected=", ".join(sorted(FLAVOR_ACTIONS["vmagent"])))


def _goquote(s: str) -> str:
    """Go's %q for the characters that matter in messages."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _goquote_list(items: Sequence[str]) -> str:
    return "[" + " ".join(_goquote(s) for s in items) + "]"


# --------------------------------------------------------------------------------------------
# Go's regexp.Expand


def expand(template: str, text: str, match: Any) -> str:
    """Expand `$1`, `${1}`, `$name`, `${name}` and `$$` like Go's `Regexp.ExpandString`.

    A name is the longest run of letters, digits and `_` (so `$1x` is the group named `1x`);
    numbers with leading zeros are names; unknown or unmatched groups expand to ""; a `$` not
    followed by a valid reference is kept literally.
    """
    out: list[str] = []
    i, n = 0, len(template)
    while i < n:
        j = template.find("$", i)
        if j < 0:
            out.append(template[i:])
            break
        out.append(template[i:j])
        i = j + 1
        if i < n and template[i] == "$":
            out.append("$")
            i += 1
            continue
        name, rest = _extract(template, i)
        if name is None:
            out.append("$")
            continue
        i = rest
        out.append(_group(match, name))
    return "".join(out)


def _is_name_char(c: str) -> bool:
    return c == "_" or unicodedata.category(c)[0] == "L" or unicodedata.category(c) == "Nd"


def _extract(template: str, i: int) -> tuple[str | None, int]:
    n = len(template)
    brace = i < n and template[i] == "{"
    start = i + 1 if brace else i
    k = start
    while k < n and _is_name_char(template[k]):
        k += 1
    if k == start:
        return None, i
    name = template[start:k]
    if brace:
        if k >= n or template[k] != "}":
            return None, i
        k += 1
    return name, k


def group_number(pattern: Any, name: str) -> int | None:
    """The group `$name` refers to in a compiled pattern (Go's rules), or None: a reference to a
    group the regex does not have expands to ""."""
    if name.isascii() and name.isdigit() and not (name[0] == "0" and len(name) > 1) and len(name) < 9:
        num = int(name)
        return num if num <= pattern.groups else None
    return pattern.groupindex.get(name)


def escapes_anchors(regex: str) -> bool:
    """Whether a regex only compiles inside the agent's anchoring wrapper, i.e. its alternation
    escapes the anchors (`a)|(b` → `^(?s:a)|(b)$`): it then matches *part* of a string."""
    try:
        re2.compile(regex, _RE2_OPTIONS)
    except re2.error:
        return True
    return False


def replace_all(pattern: Any, text: str, template: str) -> str:
    """Go's `Regexp.ReplaceAllString(text, template)`: every non-overlapping match, leftmost
    first, replaced by the expanded template; the unmatched text between them kept.

    Prometheus' (and Alloy's) `labelmap` renames with this on the *anchored* pattern, so a regex
    whose alternation escapes the anchors (`a)|(b` → `^(?s:a)|(b)$`) replaces only the part of
    a name it matches and the rest of the name survives. An empty match right after a previous
    match is not replaced (Go's rule), and the search always advances by at least one character.
    """
    out: list[str] = []
    last_end, pos, n = 0, 0, len(text)
    while pos <= n:
        m = pattern.search(text, pos)
        if m is None:
            break
        start, end = m.span()
        out.append(text[last_end:start])
        if end > last_end or start == 0:
            out.append(expand(template, text, m))
        last_end = end
        pos = pos + 1 if pos + 1 > end else end
    out.append(text[last_end:])
    return "".join(out)


def _group(match: Any, name: str) -> str:
    if match is None:  # Go expands against a failed match: every group is empty
        return ""
    num = group_number(match.re, name)
    if num is None:
        return ""
    start, end = match.span(num)
    if start < 0:
        return ""
    return match.string[start:end]


# --------------------------------------------------------------------------------------------
# Go's strings.ToLower / strings.ToUpper (simple, per-rune case mapping)


def _go_case(s: str, upper: bool) -> str:
    out = []
    for c in s:
        m = c.upper() if upper else c.lower()
        if len(m) != 1:
            m = "i" if (c == "\u0130" and not upper) else c
        out.append(m)
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Applying rules


Labels = dict[str, str]


def apply(rules: Sequence[Rule], labels: Mapping[str, str], flavor: Flavor = "prometheus") -> Labels | None:
    """Relabel `labels` with `rules`; None means the series is dropped.

    Empty-valued labels count as absent (they are not in the result); a result without any
    label is a dropped series.
    """
    steps = trace(rules, labels, flavor)
    return steps[-1][1] if steps else _finish(_start(labels, flavor), flavor)


def apply_alloy_targets(rules: Sequence[Rule], labels: Mapping[str, str]) -> Labels | None:
    """Alloy's `discovery.relabel` (v1.18) on one target: Prometheus semantics, except that
    `labelmap` walks the target builder's labels as Alloy does: first its Go map of labels
    added by earlier rules (`toAdd`), while the rule adds to that same map, so a label renamed
    from an added one may be renamed again by the same rule; then the target's own labels
    (what they are renamed to is not visited again). This runs one order Alloy may take:
    added labels in name order, each new one as it comes; then the rest in name order."""
    lb = {k: v for k, v in labels.items() if v != ""}
    added: set[str] = set()
    for rule in rules:
        before = dict(lb)
        out = _labelmap_alloy(rule, lb, added) if rule.action == "labelmap" else _prom_step(rule, lb)
        if out is None:
            return None
        lb = out
        added |= {k for k, v in lb.items() if before.get(k) != v}
        added -= {k for k in before if k not in lb}
    return _finish(lb, "prometheus")


_REVISIT_LIMIT = 64


def _labelmap_alloy(rule: Rule, lb: dict[str, str], added: set[str]) -> dict[str, str]:
    """labelmap over Alloy's target builder (see `apply_alloy_targets`)."""
    pattern = rule.pattern("prometheus")
    queue = sorted((k, v) for k, v in lb.items() if k in added)
    own = sorted((k, v) for k, v in lb.items() if k not in added)
    for _ in range(_REVISIT_LIMIT):
        if not queue:
            break
        name, value = queue.pop(0)
        if rule.matches(name, "prometheus"):
            new = replace_all(pattern, name, rule.replacement)
            if new not in added or lb.get(new) != value:
                queue.append((new, value))
            lb[new] = value
            added.add(new)
    for name, value in own:
        if rule.matches(name, "prometheus"):
            lb[replace_all(pattern, name, rule.replacement)] = value
    return lb


def trace(rules: Sequence[Rule], labels: Mapping[str, str],
          flavor: Flavor = "prometheus") -> list[tuple[Rule, Labels | None]]:
    """The labels after each rule (empty-valued ones hidden); stops after the rule that drops."""
    if flavor not in FLAVORS:
        raise ValueError(f"unknown relabel flavor {flavor!r}")
    state = _start(labels, flavor)
    steps: list[tuple[Rule, Labels | None]] = []
    step = _prom_step if flavor == "prometheus" else _vm_step
    for index, rule in enumerate(rules):
        state = step(rule, state)
        if state is None:
            steps.append((rule, None))
            return steps
        last = index == len(rules) - 1
        steps.append((rule, _finish(state, flavor) if last else _visible(state)))
    return steps


class _Builder(dict):
    """Prometheus' `labels.Builder` over one relabel list, as a dict whose order is its `Range`
    order: the input's labels no rule has set or deleted, by name, then those set since (`add`),
    in the order they were first added. A set of an input label (even to its value) moves it to
    the end; a set of an added one keeps its place; a delete drops it (a later set re-adds it at
    the end). `labelmap` walks this order and the last write to a name wins, so it decides which
    of several labels mapped to one name survives (found by the differential suite against
    Prometheus v0.312.0; `Builder.Set`/`Del`/`Range`, model/labels)."""

    def __init__(self, labels: Mapping[str, str]):
        super().__init__(sorted((k, v) for k, v in labels.items() if v != ""))
        self.added: set[str] = set()

    def put(self, name: str, value: str) -> None:
        if value == "":
            self.drop(name)
        elif name in self.added:
            self[name] = value
        else:
            self.pop(name, None)
            self[name] = value
            self.added.add(name)

    def drop(self, name: str) -> None:
        self.pop(name, None)
        self.added.discard(name)


def _start(labels: Mapping[str, str], flavor: str) -> Any:
    if flavor == "prometheus":
        return _Builder(labels)
    return [[str(k), str(v)] for k, v in labels.items()]


def _visible(state: Any) -> Labels:
    """The labels a series carries: empty values are absent.  Prometheus keeps a label whose
    *name* is empty (labelmap to an empty replacement makes one, and remote write sends it);
    vmagent's state is a list, whose empty-named entries it does not send."""
    if isinstance(state, dict):
        return dict(sorted((k, v) for k, v in state.items() if v != ""))
    # labelmap_all can leave two entries with one name: both are sent, the store keeps the last
    latest = {k: v for k, v in state if k != "" and v != ""}
    return dict(sorted(latest.items()))


def _finish(state: Any, flavor: str) -> Labels | None:
    out = _visible(state)
    return out or None


def _joined(rule: Rule, get: Any) -> str:
    return rule.separator.join(get(name) for name in rule.source_labels)


def _prom_step(rule: Rule, lb: dict[str, str]) -> dict[str, str] | None:
    """Prometheus `relabel()`: one rule on a label set (Set with "" deletes)."""
    def set_label(name: str, value: str) -> None:
        if isinstance(lb, _Builder):
            lb.put(name, value)
        elif value == "":
            lb.pop(name, None)
        else:
            lb[name] = value

    val = _joined(rule, lambda n: lb.get(n, ""))
    a = rule.action
    if a == "drop":
        return None if rule.matches(val, "prometheus") else lb
    if a == "keep":
        return lb if rule.matches(val, "prometheus") else None
    if a == "dropequal":
        return None if lb.get(rule.target_label or "", "") == val else lb
    if a == "keepequal":
        return lb if lb.get(rule.target_label or "", "") == val else None
    if a in ("keep_if_equal", "drop_if_equal"):
        equal = _all_equal([lb.get(n, "") for n in rule.source_labels])
        return lb if equal == (a == "keep_if_equal") else None
    if a == "replace":
        m = rule.match(val, "prometheus")
        if m is None:
            return lb
        target = expand(rule.target_label or "", val, m)
        if not is_valid_label_name(target):
            return lb
        set_label(target, expand(rule.replacement, val, m))
    elif a == "lowercase":
        set_label(rule.target_label or "", _go_case(val, upper=False))
    elif a == "uppercase":
        set_label(rule.target_label or "", _go_case(val, upper=True))
    elif a == "hashmod":
        digest = hashlib.md5(val.encode("utf-8")).digest()
        set_label(rule.target_label or "", str(int.from_bytes(digest[8:], "big") % (rule.modulus or 1)))
    elif a == "labelmap":
        walk = list(lb.items()) if isinstance(lb, _Builder) else sorted(lb.items())
        for name, value in walk:
            if rule.matches(name, "prometheus"):
                set_label(replace_all(rule.pattern("prometheus"), name, rule.replacement), value)
    elif a in ("labeldrop", "labelkeep"):
        for name in sorted(lb):
            if rule.matches(name, "prometheus") == (a == "labeldrop"):
                set_label(name, "")
    else:  # pragma: no cover - rule_from_mapping rejects unknown actions
        raise ValueError(f"unknown relabel action {a!r}")
    return lb


def _all_equal(values: list[str]) -> bool:
    return all(v == values[0] for v in values[1:])


def _vm_get(labels: list[list[str]], name: str) -> str:
    for entry in labels:
        if entry[0] == name:
            return entry[1]
    return ""


def _vm_set(labels: list[list[str]], name: str, value: str) -> None:
    """vmagent `setLabelValue`: update the first entry in place, else append (even "")."""
    for entry in labels:
        if entry[0] == name:
            entry[1] = value
            return
    labels.append([name, value])


def vm_replace_skips_regex(rule: Rule) -> bool:
    """vmagent's `replace` fast path: a default regex (unset, or one that simplifies to `.*`) and
    a target without `$`: it writes without matching. With replacement `$1` it copies the joined
    value, with one without `$` it writes the constant; `{{label}}` references are filled first
    (so a filled-in `$1` copies too)."""
    vm = rule.vm
    return (vm is not None and vm.regex.default and "$" not in (rule.target_label or "")
            and (rule.replacement == "$1" or "$" not in rule.replacement))


def vm_map_name(rule: Rule, name: str) -> str | None:
    """vmagent's labelmap rename (`replaceFullStringFast`): the new name, or None when the name
    is not renamed (the regex misses, or the rename gives the name itself)."""
    vm = rule.vm
    new = _vm_full_replace(rule, name)
    return None if new == name else new


def _vm_full_replace(rule: Rule, s: str) -> str:
    """`replaceFullStringFast`: the replacement when `s` matches the whole regex, else `s`."""
    regex = rule.vm.regex
    replacement = rule.replacement
    has_dollar = "$" in replacement
    prefix, complete = vmagent.literal_prefix(regex.text) if not regex.default else ("", False)
    if complete and not has_dollar:
        return replacement if s == prefix else s
    if not s.startswith(prefix):
        return s
    if replacement == "$1" and not regex.default:
        rest = regex.text[len(prefix):]
        if regex.text.startswith(prefix) and rest in ("(.*)", "(.+)"):
            suffix = s[len(prefix):]
            return suffix if rest == "(.*)" or suffix else s
    if not regex.matches(s):
        return s
    m = regex.groups(s)
    return s if m is None else expand(replacement, s, m)


def _vm_replace_all(rule: Rule, s: str) -> str:
    """`replaceStringSubmatchesFast`: Go's ReplaceAllString with the unanchored regex."""
    return replace_all(rule.vm.regex.original, s, rule.replacement)


def _vm_step(rule: Rule, labels: list[list[str]]) -> list[list[str]] | None:
    """vmagent v1.150.0 `parsedRelabelConfig.apply`: one rule on an ordered label list."""
    result = _vm_action(rule, labels)
    return result if result else None  # vmagent stops as soon as no entry is left


def _vm_action(rule: Rule, labels: list[list[str]]) -> list[list[str]] | None:
    vm = rule.vm
    if vm.if_expr is not None and not vm.if_expr.matches(labels):
        return None if rule.action == "keep" else labels  # `keep` drops on an `if` mismatch
    a = rule.action
    val = _joined(rule, lambda n: _vm_get(labels, n))
    if a == "replace":
        return _vm_replace(rule, labels, val)
    if a == "replace_all":
        new = _vm_replace_all(rule, val)
        if new != val:
            _vm_set(labels, rule.target_label or "", new)
        return labels
    if a in ("keep", "drop"):
        if vm.regex.default:
            return labels if a == "keep" else None
        return labels if vm.regex.matches(val) == (a == "keep") else None
    if a in ("keep_if_contains", "drop_if_contains"):
        whole = _vm_get(labels, rule.target_label or "")
        contains = all(_vm_get(labels, n) in whole for n in rule.source_labels)
        return labels if contains == (a == "keep_if_contains") else None
    if a in ("keep_if_equal", "drop_if_equal"):
        equal = _all_equal([_vm_get(labels, n) for n in rule.source_labels])
        return labels if equal == (a == "keep_if_equal") else None
    if a in ("keepequal", "dropequal"):
        equal = _vm_get(labels, rule.target_label or "") == val
        return labels if equal == (a == "keepequal") else None
    if a == "hashmod":
        _vm_set(labels, rule.target_label or "", str(xxh64(val.encode("utf-8")) % (rule.modulus or 1)))
        return labels
    if a == "labelmap":
        for entry in labels[:len(labels)]:  # entries appended meanwhile are not visited
            name = vm_map_name(rule, entry[0])
            if name is not None:
                _vm_set(labels, name, entry[1])
        return labels
    if a == "labelmap_all":
        for entry in labels:
            entry[0] = _vm_replace_all(rule, entry[0])
        return labels
    if a in ("labeldrop", "labelkeep"):
        return [e for e in labels if vm.regex.matches(e[0]) != (a == "labeldrop")]
    if a in ("lowercase", "uppercase"):
        _vm_set(labels, rule.target_label or "", _go_case(val, upper=(a == "uppercase")))
        return labels
    if a == "graphite":
        matches = vmagent.graphite_match(vm.graphite_match, _vm_get(labels, "__name__"))
        if matches is not None:
            for name, parts in vm.graphite_labels:
                _vm_set(labels, name, vmagent.graphite_expand(parts, matches))
        return labels
    raise ValueError(f"unknown relabel action {a!r}")  # pragma: no cover


def _vm_replace(rule: Rule, labels: list[list[str]], val: str) -> list[list[str]]:
    """vmagent's `replace`: `{{label}}` references filled, the fast paths of a default regex, then
    a match decided by the dotall PromRegex and groups taken from the non-dotall `^(?:re)$`."""
    vm = rule.vm
    replacement = rule.replacement
    if "{{" in replacement:
        replacement = vmagent.fill_label_references(replacement, lambda n: _vm_get(labels, n))
    target = rule.target_label or ""
    if vm.regex.default and "$" not in target:
        if replacement == "$1":
            _vm_set(labels, target, val)
            return labels
        if "$" not in rule.replacement:
            _vm_set(labels, target, replacement)
            return labels
    if not vm.regex.matches(val):
        return labels
    m = vm.regex.groups(val)
    if replacement == rule.replacement:
        value = val if m is None else expand(replacement, val, m)
    else:
        value = expand(replacement, val, m)
    name = expand(target, val, m) if "$" in target else target
    _vm_set(labels, name, value)
    return labels
