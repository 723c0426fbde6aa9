"""Compare two rendered/ trees and group the changes that are the same across clusters.

A rendered path belongs to a *unit*: a cluster (`clusters/<id>/…`), a region (`regions/<slug>/…`)
or the fleet (anything else, e.g. `platform/alerts/`). Within a unit, a YAML file is split into
its objects (kind, namespace/name) and every other file is one object. A change is one object's
changed lines (a unified diff without context) with the unit's name written as `<cluster>` /
`<region>` and the hunk line numbers left out: the same edit at another line, naming another
cluster, or between other context lines (an overlay's different neighbouring value), is the same
change. The diff shown for a group has three lines of context, taken from its first unit. Units
with the same change form a group; the largest group of an object comes first and the other
groups of that object are its exceptions.
"""
from __future__ import annotations

import difflib
import hashlib
import re
from dataclasses import dataclass, field

#: What a unit's own name is written as in a normalised change.
PLACEHOLDER = {"cluster": "<cluster>", "region": "<region>", "fleet": ""}
#: Context lines around each hunk (as `git diff`).
CONTEXT = 3

_KIND = re.compile(r"^kind:\s*(\S+)\s*$", re.M)
_META_FIELD = re.compile(r"^  (name|namespace):\s*(\S+)\s*$", re.M)
_HUNK_HEADER = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@")


@dataclass(frozen=True)
class Unit:
    """Who a rendered file belongs to: ("cluster", id), ("region", slug) or ("fleet", "")."""

    scope: str
    name: str

    def __str__(self) -> str:
        return self.name or "fleet"


@dataclass(frozen=True)
class Change:
    """One object's change, normalised: the grouping key."""

    path: str        # path inside the unit (the whole path for the fleet)
    obj: str         # "Kind namespace/name" for a YAML object, "" for a whole file
    status: str      # added | removed | modified
    diff: str        # changed lines only: no context, file headers or line numbers; unit name abstracted


@dataclass
class Group:
    """Units that share one change; `shown` is the change with context, from the first unit."""

    scope: str
    change: Change
    units: list[str] = field(default_factory=list)
    shown: str = ""


def unit_of(path: str) -> tuple[Unit, str]:
    """(unit, path inside it) of a path under rendered/."""
    parts = path.split("/", 2)
    if len(parts) == 3 and parts[0] == "clusters":
        return Unit("cluster", parts[1]), parts[2]
    if len(parts) == 3 and parts[0] == "regions":
        return Unit("region", parts[1]), parts[2]
    return Unit("fleet", ""), path


def changed_paths(before: dict[str, bytes], after: dict[str, bytes]) -> list[str]:
    """Every path whose bytes differ, is new or is gone, sorted."""
    return sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))


def _objects(text: str, path: str) -> dict[str, str]:
    """A YAML file's objects by "Kind namespace/name"; any other file (or one whose objects
    cannot be told apart) is one object named ""."""
    if not path.endswith((".yaml", ".yml")) or not text:
        return {"": text}
    docs = re.split(r"(?m)^---[ \t]*(?:\n|\Z)", text)
    out: dict[str, str] = {}
    for doc in docs:
        kind = _KIND.search(doc)
        if kind is None:
            if doc.strip() and not all(line.startswith("#") for line in doc.strip().splitlines()):
                return {"": text}
            out.setdefault("", "")  # a header comment: it travels with the first object
            out[""] += doc
            continue
        meta = dict(_META_FIELD.findall(doc.split("\nmetadata:", 1)[-1].split("\nspec:", 1)[0]))
        name = "/".join(filter(None, [meta.get("namespace"), meta.get("name")]))
        key = f"{kind.group(1)} {name}".strip()
        if key in out:
            return {"": text}
        out[key] = doc
    if "" in out and len(out) > 1:  # the header comment: fold it into the first object
        header = out.pop("")
        first = next(iter(out))
        out[first] = header + out[first]
    return out


def _hunks(before: str, after: str, context: int) -> str:
    """Unified diff of two texts without the file headers and with `@@` line numbers removed."""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), n=context, lineterm="")
    out = []
    for i, line in enumerate(lines):
        if i < 2 and line.startswith(("---", "+++")):
            continue
        out.append("@@" if _HUNK_HEADER.match(line) else line)
    return "\n".join(out)


def _normalise(text: str, unit: Unit) -> str:
    return text.replace(unit.name, PLACEHOLDER[unit.scope]) if unit.name else text


class _DiffCache:
    """Diffs by the (normalised) texts they compare: 1,000 clusters with the same edit cost one."""

    def __init__(self) -> None:
        self.memo: dict[tuple[str, str, str], list[tuple[Change, str]]] = {}

    def changes(self, rel: str, before: str | None, after: str | None) -> list[tuple[Change, str]]:
        """(change, the change with context) per changed object."""
        key = (rel, _digest(before), _digest(after))
        found = self.memo.get(key)
        if found is None:
            found = self.memo[key] = _object_changes(rel, before, after)
        return found


def _digest(text: str | None) -> str:
    return "-" if text is None else hashlib.sha256(text.encode()).hexdigest()


def _object_changes(rel: str, before: str | None, after: str | None) -> list[tuple[Change, str]]:
    old = _objects(before, rel) if before is not None else {}
    new = _objects(after, rel) if after is not None else {}
    if before is None or after is None or list(old) == [""] or list(new) == [""]:
        # A whole file appears or goes, or is not (or no longer) a set of YAML objects: one change.
        status = "added" if before is None else "removed" if after is None else "modified"
        return [(Change(rel, "", status, _hunks(before or "", after or "", 0)),
                 _hunks(before or "", after or "", CONTEXT))]
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        status = "added" if a is None else "removed" if b is None else "modified"
        out.append((Change(rel, key, status, _hunks(a or "", b or "", 0)), _hunks(a or "", b or "", CONTEXT)))
    return out


def group_changes(before: dict[str, bytes], after: dict[str, bytes]) -> list[Group]:
    """Every change between the trees, grouped across units; the largest group of each object
    first, objects in path order."""
    cache = _DiffCache()
    by_change: dict[tuple[str, Change], list[str]] = {}
    shown: dict[tuple[str, Change], str] = {}
    for path in changed_paths(before, after):
        unit, rel = unit_of(path)
        old, new = before.get(path), after.get(path)
        old_text = _normalise(old.decode("utf-8", "replace"), unit) if old is not None else None
        new_text = _normalise(new.decode("utf-8", "replace"), unit) if new is not None else None
        for change, with_context in cache.changes(rel, old_text, new_text):
            by_change.setdefault((unit.scope, change), []).append(unit.name)
            shown.setdefault((unit.scope, change), with_context)  # paths are sorted: the first unit's
    groups = [Group(scope, change, sorted(units), shown[scope, change]) for (scope, change), units in by_change.items()]
    scope_order = {"cluster": 0, "region": 1, "fleet": 2}
    groups.sort(key=lambda g: (scope_order[g.scope], g.change.path, g.change.obj, -len(g.units), g.units[0],
                               g.change.diff))
    return groups


def unit_counts(groups: list[Group]) -> dict[str, int]:
    """How many distinct clusters and regions changed (the fleet counts as one unit)."""
    seen: dict[str, set[str]] = {"cluster": set(), "region": set(), "fleet": set()}
    for g in groups:
        seen[g.scope].update(g.units)
    return {scope: len(names) for scope, names in seen.items()}
