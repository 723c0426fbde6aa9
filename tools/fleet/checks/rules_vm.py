"""Lint plug-in: the customer recording rules' unit tests, replayed on the real VictoriaMetrics and
vmalert the regions run; a result that differs from the test's expected samples is a finding at
the rule's line (see fleet.rules.vmtests).
"""
from __future__ import annotations

from typing import Iterable

from ..errors import Finding
from ..rules import lint
from . import CheckContext

NAME = "rules-vm"
DESCRIPTION = "customer rule tests replayed on the pinned VictoriaMetrics + vmalert; a difference from the expected samples is a finding at the rule"
ORDER = 61
#: What rules-tests reads (rule files, their tests, region membership), and the rendered
#: regional rule sets the replay loads (fleet.rules.vmtests).
READS = ("base/rules/*", "regions/*", "clusters/*/rules/*", "tests/rules/*", "@membership", "rendered/regions/*")


def check(ctx: CheckContext) -> Iterable[Finding]:
    return lint.vm_findings(ctx.root, ctx.cache, ctx.fleet)
