"""Lint plug-in: promtool check rules and vmalert -dryRun on every merged rule file.

Findings point at the source rule in base/, regions/ or clusters/ (see fleet.rules.lint).
"""
from __future__ import annotations

from typing import Iterable

from ..errors import Finding
from ..rules import lint
from . import CheckContext

NAME = "rules-syntax"
DESCRIPTION = "promtool check rules and vmalert -dryRun on every merged rule file"
ORDER = 60
#: The rule files and their tests, and which clusters are in which region (fleet.changed).
READS = ("base/rules/*", "regions/*", "clusters/*/rules/*", "tests/rules/*", "@membership")


def check(ctx: CheckContext) -> Iterable[Finding]:
    return lint.as_check(NAME, lint.syntax_findings(ctx.root, ctx.fleet, ctx.cache))
