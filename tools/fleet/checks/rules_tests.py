"""Lint plug-in: promtool test rules on tests/rules and beside region/cluster overrides; every rendered rule covered by a test that expects output from it.

Findings point at the source rule in base/, regions/ or clusters/ (see fleet.rules.lint).
"""
from __future__ import annotations

from typing import Iterable

from ..errors import Finding
from ..rules import lint
from . import CheckContext

NAME = "rules-tests"
DESCRIPTION = "promtool test rules on tests/rules and beside region/cluster overrides; every rendered rule covered by a test that expects output from it"
ORDER = 60
#: The rule files and their tests, and which clusters are in which region (fleet.changed).
READS = ("base/rules/*", "regions/*", "clusters/*/rules/*", "tests/rules/*", "@membership")


def check(ctx: CheckContext) -> Iterable[Finding]:
    return lint.unit_test_findings(ctx.root, ctx.cache, ctx.fleet)
