"""Lint plug-in: PromQL static checks on recording rules and platform alerts (project_id kept, no customer ids on the platform plane, for/severity, names, producers).

Findings point at the source rule in base/, regions/ or clusters/ (see fleet.rules.lint).
"""
from __future__ import annotations

from typing import Iterable

from ..errors import Finding
from ..rules import lint
from . import CheckContext

NAME = "rules-static"
DESCRIPTION = "PromQL static checks on recording rules and platform alerts (project_id kept, no customer ids on the platform plane, for/severity, names, producers)"
ORDER = 60
#: The rule files and their tests, and which clusters are in which region (fleet.changed).
READS = ("base/rules/*", "regions/*", "clusters/*/rules/*", "tests/rules/*", "@membership")


def check(ctx: CheckContext) -> Iterable[Finding]:
    return lint.as_check(NAME, lint.static_findings(ctx.root, ctx.fleet, ctx.cache))
