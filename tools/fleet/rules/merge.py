"""Merge per-region and per-cluster rule overrides onto the base, like values overlays.

The rule (also in base/rules/README.md):

* Groups are matched by `name` across all files of a layer; a file name only decides where a
  *new* group is rendered (the overlay file's base name).
* Same group name: group settings (`interval`, `limit`) are overridden key by key; each overlay
  rule is matched by (`record`|`alert`, name):
    - `{record: x, delete: true}` removes rule x (an error if there is none: catches typos);
    - a rule with an existing name replaces it *whole*, at the base rule's position;
    - a rule with a new name is appended, in overlay order.
* `{name: g, delete: true}` removes group g entirely.
* Layers apply in order base ← region ← clusters of the region (sorted by cluster id). Because
  vmalert evaluates one rule set per region, two clusters may not touch the same rule or add the
  same group: that is an input error rather than a silent "last cluster wins".
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import PurePath

from ..errors import InputError, SourceRef
from .loader import Group, Rule, RuleFile


@dataclass
class Layer:
    """Overlay files of one layer: kind is "region" or "cluster", label names it (e.g. "fra1")."""

    kind: str
    label: str
    files: list[RuleFile]


@dataclass
class MergedSet:
    """The merged rule files: output file name → groups, in a stable order."""

    files: dict[str, list[Group]] = field(default_factory=dict)

    def groups(self) -> list[Group]:
        return [g for name in sorted(self.files) for g in self.files[name]]

    def rules(self) -> list[tuple[Group, Rule]]:
        return [(g, r) for g in self.groups() for r in g.rules]

    def sources(self, file_name: str) -> list[str]:
        found: set[str] = set()
        for group in self.files.get(file_name, []):
            found.update(group.sources)
            found.update(r.source.file for r in group.rules)
        return sorted(found)


def base_set(base_files: list[RuleFile]) -> MergedSet:
    """Start from the base: group names must be unique across all base files."""
    merged = MergedSet()
    seen: dict[str, SourceRef] = {}
    for rule_file in sorted(base_files, key=lambda f: f.path):
        out = PurePath(rule_file.path).name
        for group in rule_file.groups:
            if group.name in seen:
                raise InputError(f"group {group.name!r} is already defined at {seen[group.name]}",
                                 group.source, expected="group names unique across base/rules/recording")
            if group.delete or any(r.delete for r in group.rules):
                raise InputError("`delete` is only meaningful in region/cluster overrides", group.source)
            seen[group.name] = group.source
            merged.files.setdefault(out, []).append(copy.deepcopy(group))
    return merged


def _find(merged: MergedSet, name: str) -> tuple[str, int] | None:
    for file_name, groups in merged.files.items():
        for i, group in enumerate(groups):
            if group.name == name:
                return file_name, i
    return None


class _ClusterClaims:
    """Which cluster touched which (group, rule) — two clusters may not touch the same one."""

    def __init__(self) -> None:
        self.claims: dict[tuple, tuple[str, SourceRef]] = {}

    def claim(self, layer: Layer, key: tuple, source: SourceRef) -> None:
        if layer.kind != "cluster":
            return
        previous = self.claims.get(key)
        if previous and previous[0] != layer.label:
            raise InputError(
                f"cluster {layer.label!r} and cluster {previous[0]!r} (at {previous[1]}) both override "
                f"{' '.join(map(str, key))!r}; vmalert evaluates one rule set per region",
                source, expected="put shared overrides in the region folder")
        self.claims[key] = (layer.label, source)


def _apply_rule(group: Group, rule: Rule) -> None:
    for i, existing in enumerate(group.rules):
        if existing.key == rule.key:
            if rule.delete:
                del group.rules[i]
            else:
                group.rules[i] = copy.deepcopy(rule)
            return
    if rule.delete:
        raise InputError(f"cannot delete {rule.kind} {rule.name!r}: group {group.name!r} has no such rule",
                         rule.source, expected="the name of a rule in the merged group")
    group.rules.append(copy.deepcopy(rule))


def _apply_group(merged: MergedSet, overlay_file: str, group: Group, layer: Layer, claims: _ClusterClaims) -> None:
    found = _find(merged, group.name)
    if group.delete:
        if found is None:
            raise InputError(f"cannot delete group {group.name!r}: no such group", group.source)
        claims.claim(layer, ("group", group.name), group.source)
        del merged.files[found[0]][found[1]]
        if not merged.files[found[0]]:
            del merged.files[found[0]]
        return
    if found is None:
        if any(r.delete for r in group.rules):
            bad = next(r for r in group.rules if r.delete)
            raise InputError(f"cannot delete {bad.kind} {bad.name!r}: group {group.name!r} is new here", bad.source)
        claims.claim(layer, ("group", group.name), group.source)
        merged.files.setdefault(PurePath(overlay_file).name, []).append(copy.deepcopy(group))
        return
    target = merged.files[found[0]][found[1]]
    target.settings.update(group.settings)
    target.sources.append(overlay_file)
    for rule in group.rules:
        claims.claim(layer, ("rule", group.name, rule.kind, rule.name), rule.source)
        _apply_rule(target, rule)


def merge_layers(base_files: list[RuleFile], layers: list[Layer]) -> MergedSet:
    """Apply overlay layers, in order, to the base files. Raises InputError on a bad override."""
    merged = base_set(base_files)
    claims = _ClusterClaims()
    for layer in layers:
        for rule_file in sorted(layer.files, key=lambda f: f.path):
            for group in rule_file.groups:
                _apply_group(merged, rule_file.path, group, layer, claims)
    for groups in merged.files.values():
        groups.sort(key=lambda g: g.name)
    return merged
