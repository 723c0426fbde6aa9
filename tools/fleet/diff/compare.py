"""Run a diff: both sides rendered, changes grouped, telemetry compared → `DiffReport`."""
from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, processing
from ..relabel import policy as pol
from . import telemetry as tel
from .grouping import Group, Unit, group_changes, unit_counts, unit_of
from .worktree import (Base, describe_head, finish_base_render, render_both, render_working_tree, resolve_base,
                       same_toolchain, start_base_render, stop, temporary_worktree)


@dataclass
class TelemetryGroup:
    """Units whose reach of one destination changed the same way."""

    scope: str
    change: tel.DestinationChange
    units: list[str] = field(default_factory=list)


@dataclass
class DiffReport:
    base: Base
    head: dict
    groups: list[Group]
    telemetry: list[TelemetryGroup]
    files: int

    @property
    def changed(self) -> bool:
        return bool(self.groups)

    @property
    def units(self) -> dict[str, int]:
        return unit_counts(self.groups)


def diff(root: Path, ref: str | None) -> DiffReport:
    """Render REF and the working tree, group the changes, compare the telemetry."""
    root = root.resolve()
    base = resolve_base(root, ref)
    with temporary_worktree(root, base.commit) as worktree:
        if same_toolchain(root, base.commit):
            before, after = render_both(root, worktree, base)
        else:
            proc = start_base_render(worktree)
            try:
                after = render_working_tree(root)
                before = finish_base_render(proc, worktree, base)
            finally:
                stop(proc)
        policy_before = _policy(worktree)
    policy_after = _policy(root)
    groups = group_changes(before, after)
    files = sum(1 for p in set(before) | set(after) if before.get(p) != after.get(p))
    telemetry = telemetry_diff(before, after, policy_before or policy_after, policy_after)
    return DiffReport(base, describe_head(root), groups, telemetry, files)


def _policy(root: Path) -> pol.Policy | None:
    path = root / pol.DEFAULT_POLICY
    return pol.load_policy(path, str(pol.DEFAULT_POLICY)) if path.is_file() else None


def telemetry_diff(before: dict[str, bytes], after: dict[str, bytes], policy_before: pol.Policy | None,
                   policy_after: pol.Policy | None) -> list[TelemetryGroup]:
    """Destination changes grouped across units. Units whose telemetry files are byte-identical
    on both sides (and the policy too) are not analysed; the others cost one analysis per
    distinct normalised file per side, run in parallel."""
    if policy_after is None:
        return []
    sides = (tel.Analysis(policy_before or policy_after), tel.Analysis(policy_after))
    trees = (_telemetry_files(before), _telemetry_files(after))
    policy_changed = policy_before is not None and policy_before.fingerprint != policy_after.fingerprint
    units = [u for u in sorted(set(trees[0]) | set(trees[1]), key=lambda u: (u.scope, u.name))
             if policy_changed or trees[0].get(u, {}) != trees[1].get(u, {})]
    keys: dict[tuple[int, Unit], list[str]] = {}
    tasks: dict[tuple[int, str], tuple[str, bytes]] = {}
    dest_memo: dict[tuple[int, str], set[str]] = {}
    for unit in units:
        relevant = _relevant_files(sides, trees[0].get(unit, {}), trees[1].get(unit, {}), policy_changed, dest_memo)
        for side in (0, 1):
            files = {p: d for p, d in trees[side].get(unit, {}).items() if p in relevant}
            keys[side, unit] = [sides[side].key(unit, path, data) for path, data in sorted(files.items())]
            for (path, data), key in zip(sorted(files.items()), keys[side, unit]):
                tasks.setdefault((side, key), (path, data))
    summaries = _summaries(sides, tasks)
    grouped: dict[tuple[str, tel.DestinationChange], list[str]] = {}
    compared: dict[tuple[tuple[str, ...], tuple[str, ...]], list[tel.DestinationChange]] = {}
    for unit in units:
        pair = (tuple(keys[0, unit]), tuple(keys[1, unit]))
        if pair not in compared:  # language operations are not cheap: once per distinct pair
            old, new = (tel.merge(summaries[side, key] for key in pair[side]) for side in (0, 1))
            compared[pair] = tel.compare(old, new)
        for change in compared[pair]:
            grouped.setdefault((unit.scope, change), []).append(unit.name)
    out = [TelemetryGroup(scope, change, sorted(names)) for (scope, change), names in grouped.items()]
    out.sort(key=lambda g: (g.scope != "cluster", -len(g.change.gdpr_new), -len(g.units), g.change.destination,
                            g.units[0]))
    return out


def _relevant_files(sides: tuple[tel.Analysis, tel.Analysis], old: dict[str, bytes], new: dict[str, bytes],
                    policy_changed: bool, memo: dict[tuple[int, str], set[str]]) -> set[str]:
    """The unit's files that can change a destination's reach: the changed ones, and unchanged
    ones feeding a destination a changed one feeds (reach is a union over files). An unchanged
    vmagent.yaml beside a changed config.alloy is left out: it costs an analysis per side."""
    changed = {p for p in set(old) | set(new) if policy_changed or old.get(p) != new.get(p)}

    def dests(side: int, path: str, data: bytes) -> set[str]:
        key = (side, sides[side].key(Unit("fleet", ""), path, data))
        if key not in memo:
            memo[key] = sides[side].destinations(path, data)
        return memo[key]

    touched: set[str] = set()
    for path in changed:
        for side, files in ((0, old), (1, new)):
            if path in files:
                touched |= dests(side, path, files[path])
    kept = set(changed)
    for path in (set(old) & set(new)) - changed:
        mine = dests(1, path, new[path])
        if "*" in touched or "*" in mine or mine & touched:
            kept.add(path)
    return kept


_TASK_STATE: tuple | None = None  # (sides, tasks) for the fork pool's workers


def _summarise(task: tuple[int, str]) -> tuple[tuple[int, str], tel.Summary]:
    assert _TASK_STATE is not None
    sides, tasks = _TASK_STATE
    side, _ = task
    path, data = tasks[task]
    with processing(f"rendered/{path} (telemetry diff)"):
        try:
            return task, sides[side].file_summary(path, data)
        except InputError as exc:  # a rendered file the analysis cannot read: say so, diff the rest
            return task, {"unanalysable": tel.Reach(findings={f"cannot analyse rendered/{path}: {exc.message}"})}


def _summaries(sides: tuple[tel.Analysis, tel.Analysis],
               tasks: dict[tuple[int, str], tuple[str, bytes]]) -> dict[tuple[int, str], tel.Summary]:
    """Every distinct file's summary; on several cores, a forked worker per core."""
    global _TASK_STATE
    workers = min(os.cpu_count() or 1, len(tasks), 8)
    _TASK_STATE = (sides, tasks)
    try:
        if workers < 2 or "fork" not in multiprocessing.get_all_start_methods():
            return dict(map(_summarise, tasks))
        # Longest first: the control plane's Alloy config has the most paths.
        order = sorted(tasks, key=lambda t: -len(tasks[t][1]))
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            return dict(pool.imap_unordered(_summarise, order, chunksize=1))
    finally:
        _TASK_STATE = None


def _telemetry_files(tree: dict[str, bytes]) -> dict[Unit, dict[str, bytes]]:
    out: dict[Unit, dict[str, bytes]] = {}
    for path, data in tree.items():
        if not path.endswith((".alloy", "/vmagent.yaml")):
            continue
        unit, _ = unit_of(path)
        if path in tel.telemetry_files(unit, [path]):
            out.setdefault(unit, {})[path] = data
    return out
