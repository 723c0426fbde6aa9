"""Checks are plug-ins: one module per policy, one function signature.

A check module defines:

    NAME = "short-name"            # used in findings and in --only/--skip
    DESCRIPTION = "one line"
    def check(ctx: CheckContext) -> Iterable[Finding]: ...

and may declare what it depends on, for `fleet lint --changed` (fleet.changed):

    SCOPE = "cluster"              # "fleet" (default): a change to READS runs it whole;
                                   # "cluster": its findings about a cluster depend only on that
                                   #   cluster's inputs and rendered folder, and READS;
                                   # "file": its findings about a file depend only on that file, and READS
    READS = ("base/*", ...)        # other repo paths it reads (fnmatch; `*` spans folders); default: all

A check with SCOPE "cluster" honours `ctx.clusters` (None: every cluster) through `ctx.fleet`,
`rendered_objects(ctx)` or `ctx.wants(cluster_id)`; one with SCOPE "file" honours `ctx.files`.

Adding a check is adding a file here; `discover()` finds it. Checks read the typed model and
the rendered output and never write anything.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable

from ..errors import Finding


@dataclass
class CheckContext:
    """What every check receives: the repo root, the typed fleet model and the rendered tree."""

    root: Path
    fleet: Any  # fleet.model.Fleet
    rendered: Path
    options: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)
    clusters: frozenset[str] | None = None   # lint only these clusters (None: all); see fleet.changed
    files: frozenset[str] | None = None      # a "file" check lints only these paths (None: all)
    changed: frozenset[str] | None = None    # `lint --changed`: the changed paths (None: a full lint)

    def wants(self, cluster_id: str) -> bool:
        """Whether this run lints `cluster_id` (`fleet lint --changed` narrows it)."""
        return self.clusters is None or cluster_id in self.clusters

    def wants_file(self, rel: str) -> bool:
        return self.files is None or rel in self.files

    def changed_any(self, patterns: tuple[str, ...]) -> bool:
        """Whether a full lint, or a changed path matches one of `patterns` (fnmatch, `*` spans folders)."""
        import fnmatch
        return self.changed is None or any(fnmatch.fnmatchcase(p, pat) for p in self.changed for pat in patterns)


@dataclass(frozen=True)
class Check:
    name: str
    description: str
    run: Callable[[CheckContext], Iterable[Finding]]
    order: int = 100
    scope: str = "fleet"                   # "fleet" | "cluster" | "file" (see the module docstring)
    reads: tuple[str, ...] = ("*",)


def _as_check(module: ModuleType) -> Check | None:
    run = getattr(module, "check", None)
    name = getattr(module, "NAME", None)
    if run is None or name is None:
        return None
    return Check(name, getattr(module, "DESCRIPTION", ""), run, getattr(module, "ORDER", 100),
                 getattr(module, "SCOPE", "fleet"), tuple(getattr(module, "READS", ("*",))))


def discover() -> list[Check]:
    """Every check module in this package, ordered by (ORDER, NAME)."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        check = _as_check(importlib.import_module(f"{__name__}.{info.name}"))
        if check:
            found.append(check)
    return sorted(found, key=lambda c: (c.order, c.name))
