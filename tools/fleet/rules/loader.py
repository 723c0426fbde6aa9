"""Load Prometheus-format rule files, keeping the source position of every group and rule.

Why positions: every later stage (merge, static checks, promtool/vmalert error mapping) reports
at the line a person edits in base/, regions/ or clusters/, never at a rendered file.

The accepted shape is the Prometheus rule file format that both `promtool check rules` and
vmalert accept: `groups: [{name, interval?, limit?, rules: [{record|alert, expr, for?, labels?,
annotations?}]}]`. Overlay files (region/cluster) may additionally mark a rule or a group with
`delete: true` (see base/rules/README.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .. import yamlio
from ..errors import InputError, InputErrors, SourceRef

GROUP_KEYS = {"name", "interval", "limit", "rules"}
RULE_KEYS = {"record", "alert", "expr", "for", "labels", "annotations"}
OVERLAY_KEY = "delete"


@dataclass
class Rule:
    """One rule as written: `kind` is "record" or "alert"; `data` is the plain mapping."""

    kind: str
    name: str
    data: dict[str, Any]
    source: SourceRef  # the `record:`/`alert:` line
    expr_source: SourceRef  # the `expr:` line
    delete: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    @property
    def expr(self) -> str:
        return str(self.data.get("expr", ""))


@dataclass
class Group:
    name: str
    settings: dict[str, Any]  # group keys other than name/rules (interval, limit)
    rules: list[Rule]
    source: SourceRef
    file: str  # repo-relative path of the file that defined it
    delete: bool = False
    sources: list[str] = field(default_factory=list)  # every file that contributed (merge)


@dataclass
class RuleFile:
    path: str  # repo-relative
    groups: list[Group]


def _ref(name: str, node: Any, key: Any = None) -> SourceRef:
    line, col = yamlio.position(node, key)
    return SourceRef(name, line, col)


def _check_keys(node: CommentedMap, allowed: set[str], name: str, what: str, errors: list[InputError]) -> None:
    for key in node:
        if key not in allowed:
            errors.append(InputError(f"unknown {what} key {key!r}", _ref(name, node, key),
                                     expected=", ".join(sorted(allowed))))


def _load_rule(node: Any, name: str, parent: CommentedSeq, index: int, overlay: bool,
               errors: list[InputError]) -> Rule | None:
    where = _ref(name, parent, index)
    if not isinstance(node, CommentedMap):
        errors.append(InputError("a rule must be a mapping", where))
        return None
    allowed = RULE_KEYS | ({OVERLAY_KEY} if overlay else set())
    _check_keys(node, allowed, name, "rule", errors)
    kinds = [k for k in ("record", "alert") if k in node]
    if len(kinds) != 1:
        errors.append(InputError("a rule needs exactly one of `record` or `alert`", where))
        return None
    kind = kinds[0]
    rule_name = node[kind]
    if not isinstance(rule_name, str) or not rule_name:
        errors.append(InputError(f"`{kind}` must be a non-empty string", _ref(name, node, kind)))
        return None
    delete = bool(node.get(OVERLAY_KEY, False))
    if OVERLAY_KEY in node and not isinstance(node[OVERLAY_KEY], bool):
        errors.append(InputError("`delete` must be true or false", _ref(name, node, OVERLAY_KEY)))
    if not delete and not isinstance(node.get("expr"), str):
        errors.append(InputError(f"rule {rule_name!r} needs an `expr` string", _ref(name, node, kind)))
        return None
    if kind == "record" and ("for" in node or "annotations" in node):
        errors.append(InputError("recording rules take no `for` or `annotations`", _ref(name, node, kind)))
    data = {k: yamlio.plain(v) for k, v in node.items() if k != OVERLAY_KEY}
    expr_ref = _ref(name, node, "expr") if "expr" in node else _ref(name, node, kind)
    return Rule(kind, rule_name, data, _ref(name, node, kind), expr_ref, delete)


def _load_group(node: Any, name: str, parent: CommentedSeq, index: int, overlay: bool,
                errors: list[InputError]) -> Group | None:
    where = _ref(name, parent, index)
    if not isinstance(node, CommentedMap):
        errors.append(InputError("a group must be a mapping", where))
        return None
    _check_keys(node, GROUP_KEYS | ({OVERLAY_KEY} if overlay else set()), name, "group", errors)
    group_name = node.get("name")
    if not isinstance(group_name, str) or not group_name:
        errors.append(InputError("a group needs a non-empty `name`", where))
        return None
    delete = node.get(OVERLAY_KEY) is True
    rules_node = node.get("rules", CommentedSeq())
    if not isinstance(rules_node, CommentedSeq):
        errors.append(InputError("`rules` must be a list", _ref(name, node, "rules")))
        return None
    rules = []
    seen: dict[tuple[str, str], SourceRef] = {}
    for i, item in enumerate(rules_node):
        rule = _load_rule(item, name, rules_node, i, overlay, errors)
        if rule is None:
            continue
        if rule.key in seen:
            errors.append(InputError(f"{rule.kind} {rule.name!r} defined twice in group {group_name!r} "
                                     f"(first at line {seen[rule.key].line})", rule.source,
                                     expected="unique rule names per group (overrides match by name)"))
        seen[rule.key] = rule.source
        rules.append(rule)
    settings = {k: yamlio.plain(v) for k, v in node.items() if k not in ("name", "rules", OVERLAY_KEY)}
    return Group(group_name, settings, rules, _ref(name, node, "name"), name, delete, [name])


def parse_rule_text(text: str, name: str, *, overlay: bool = False) -> RuleFile:
    """Parse rule-file text reported as `name`; raises InputError(s) with positions."""
    doc = yamlio.load_text(text, name)
    errors: list[InputError] = []
    if doc is None:
        return RuleFile(name, [])
    if not isinstance(doc, CommentedMap) or "groups" not in doc:
        raise InputError("a rule file is a mapping with a `groups` list", SourceRef(name, 1, 1))
    _check_keys(doc, {"groups"}, name, "top-level", errors)
    groups_node = doc["groups"]
    if not isinstance(groups_node, CommentedSeq):
        raise InputError("`groups` must be a list", _ref(name, doc, "groups"))
    groups: list[Group] = []
    seen: dict[str, SourceRef] = {}
    for i, item in enumerate(groups_node):
        group = _load_group(item, name, groups_node, i, overlay, errors)
        if group is None:
            continue
        if group.name in seen:
            errors.append(InputError(f"group {group.name!r} defined twice in this file", group.source))
        seen[group.name] = group.source
        groups.append(group)
    if errors:
        raise errors[0] if len(errors) == 1 else InputErrors(errors)
    return RuleFile(name, groups)


def load_rule_file(path: Path, root: Path, *, overlay: bool = False) -> RuleFile:
    """Load one rule file; positions are reported relative to `root`."""
    try:
        name = str(path.relative_to(root))
    except ValueError:
        name = str(path)
    return parse_rule_text(yamlio.read_text(path, name), name, overlay=overlay)


def rule_files_in(folder: Path) -> list[Path]:
    """The rule files of a folder (*.yaml, *.yml), sorted by name for determinism."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml"))
