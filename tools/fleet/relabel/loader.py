"""Read relabel rules from YAML, keeping where each rule is written.

Two shapes occur in the repo: a bare list of rules (the file vmagent's
`-remoteWrite.relabelConfig` / `-remoteWrite.urlRelabelConfig` reads) and a mapping holding
`relabel_configs`, `metric_relabel_configs` and/or `write_relabel_configs` (a scrape or
remote-write section). Every rule gets the file:line:col of its list item, so both validation
errors and later findings land on the rule a reviewer has to change.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from .. import yamlio
from ..errors import InputError, SourceRef
from .engine import Flavor, Rule, rule_from_mapping

#: Keys holding rule lists, in the order a series meets them (target, then scraped, then
#: outgoing samples); rules from several keys are returned in this order.
RULE_KEYS = ("relabel_configs", "metric_relabel_configs", "write_relabel_configs")


def load_rules(path: Path, name: str | None = None, flavor: Flavor = "prometheus") -> list[Rule]:
    """Load the rules of one YAML file (bare list, or mapping with the `RULE_KEYS`)."""
    name = name or str(path)
    node = yamlio.load_file(Path(path), name)
    if node is None:
        return []
    if isinstance(node, CommentedSeq):
        return rules_from_yaml_list(node, name, flavor)
    if isinstance(node, CommentedMap):
        present = [key for key in RULE_KEYS if key in node]
        if not present:
            line, col = yamlio.position(node)
            raise InputError("no relabel rules found", SourceRef(name, line, col),
                             expected="a list of rules or a mapping with " + ", ".join(RULE_KEYS))
        rules: list[Rule] = []
        for key in present:
            rules.extend(_rules_under(node, key, name, flavor))
        return rules
    raise InputError("relabel rules must be a YAML list or mapping", SourceRef(name, 1, 1),
                     expected="a list of rules or a mapping with " + ", ".join(RULE_KEYS))


def rules_under(node: CommentedMap, key: str, name: str, flavor: Flavor) -> list[Rule]:
    """The rules of one key of a mapping (an empty list when absent or null)."""
    return _rules_under(node, key, name, flavor) if key in node else []


def _rules_under(node: CommentedMap, key: str, name: str, flavor: Flavor) -> list[Rule]:
    value = node[key]
    if value is None:
        return []
    if not isinstance(value, CommentedSeq):
        line, col = yamlio.position(node, key)
        raise InputError(f"{key} must be a list of rules", SourceRef(name, line, col))
    return rules_from_yaml_list(value, name, flavor)


def rules_from_yaml_list(node: Any, name: str, flavor: Flavor = "prometheus") -> list[Rule]:
    """Rules from an already-loaded ruamel sequence; each `Rule.source` is its item's position."""
    if node is None:
        return []
    if not isinstance(node, list):
        line, col = yamlio.position(node)
        raise InputError("relabel rules must be a list", SourceRef(name, line, col),
                         expected="a YAML sequence of relabel_config mappings")
    rules = []
    for index, item in enumerate(node):
        line, col = yamlio.position(node, index)
        source = SourceRef(name, line, col)
        if not isinstance(item, dict):
            raise InputError("relabel rule must be a mapping", source,
                             expected="source_labels, regex, action, ...")
        rules.append(rule_from_mapping(yamlio.plain(item), source, flavor))
    return rules
