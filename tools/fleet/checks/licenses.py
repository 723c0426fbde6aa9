"""licenses: every component declares the license of what it runs, inside the allowed set.

Seed 003 §11: what we ship to customer clusters must be redistributable — no BSL, no SSPL, no
AGPL for what we ship, no "Enterprise" builds. `policies/licenses.yaml` holds the allowed SPDX
identifiers, the refused ones with their reason, and the pattern of enterprise images. Each
`component.yaml` declares `license:` (SPDX, `A AND B` needs both allowed, `A OR B` one); a
missing or refused license is a finding at that line. Independently of what is declared, an
image in use (component `image`, or any `image` key of the effective values, as pinned-versions
finds them) whose repository, tag or variant matches the enterprise pattern is a finding at the
value's line: an enterprise build is not the open-source license its component declares.
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from .. import yamlio
from ..errors import Finding, InputError, Severity, SourceRef
from ..model import Cluster, Component
from . import CheckContext
from .pinned_versions import images_in_use
from .resources import value_source

NAME = "licenses"
DESCRIPTION = "Each component declares its license in component.yaml; only allowed licenses (no BSL, SSPL, AGPL, Enterprise images)"
ORDER = 50
SCOPE = "cluster"

POLICY = "policies/licenses.yaml"


def load_policy(ctx: CheckContext) -> tuple[dict | None, Finding | None]:
    path = ctx.root / POLICY
    if not path.exists():
        return None, Finding(NAME, Severity.ERROR, SourceRef(POLICY), "license policy file missing")
    try:
        policy = yamlio.load_indexed_file(path, POLICY).data
    except InputError as exc:
        return None, Finding(NAME, Severity.ERROR, exc.source or SourceRef(POLICY), exc.message)
    if not isinstance(policy, dict) or not isinstance(policy.get("allowed"), list):
        return None, Finding(NAME, Severity.ERROR, SourceRef(POLICY, 1, 1), "expected a mapping with an `allowed` list")
    return policy, None


def license_problem(expression: Any, policy: dict) -> str | None:
    """Why an SPDX expression (ids joined by AND / OR, no parentheses) is not acceptable, or None."""
    if not isinstance(expression, str) or not expression.strip():
        return "no license declared (component.yaml `license:`, an SPDX identifier)"
    allowed, denied = set(policy["allowed"]), policy.get("denied") or {}

    def refused(spdx: str) -> str | None:
        if spdx in allowed:
            return None
        return f"{spdx}: {denied[spdx]}" if spdx in denied else f"{spdx} is outside the allowed set ({', '.join(sorted(allowed))})"

    for alternative in expression.split(" OR "):
        problems = [p for p in (refused(spdx.strip()) for spdx in alternative.split(" AND ")) if p]
        if not problems:
            return None
        last = problems
    return "; ".join(last)


def enterprise_images(ctx: CheckContext, cluster: Cluster, component: Component,
                      pattern: re.Pattern) -> Iterator[tuple[SourceRef, str]]:
    fallback = component.source_of() or SourceRef(cluster.source)
    if component.image and pattern.search(component.image):
        yield component.source_of("image") or fallback, f"{component.name}: image {component.image!r} is an Enterprise build"
    for path, image in images_in_use(ctx, cluster, component):
        parts = [image] if isinstance(image, str) else \
            [str(image.get(k)) for k in ("registry", "repository", "tag", "variant") if image.get(k)]
        if any(pattern.search(p) for p in parts):
            dotted = ".".join(map(str, path))
            source = value_source(component, dotted) or component.source_of("chart", "version") or fallback
            yield source, f"{component.name}: values.{dotted} ({' '.join(parts)}) is an Enterprise build"


def check(ctx: CheckContext) -> Iterable[Finding]:
    policy, problem = load_policy(ctx)
    if problem:
        yield problem
        return
    pattern = re.compile(policy.get("enterpriseImages") or r"(?!)", re.I)
    found: dict[tuple, list[str]] = {}
    for name, doc in sorted(ctx.fleet.raw.components.items()):
        why = license_problem(doc.data.get("license"), policy)
        if why:
            source = doc.value_ref("license") if "license" in doc.data else doc.ref()
            found.setdefault((source, f"{name}: license {why}"), []).append("all clusters")
    for cluster in ctx.fleet.clusters.values():
        for component in cluster.components.values():
            for source, message in enterprise_images(ctx, cluster, component, pattern):
                found.setdefault((source, message), []).append(cluster.id)
    for (source, message), clusters in sorted(found.items()):
        yield Finding(NAME, Severity.ERROR, source, f"{message}; cluster(s): {', '.join(sorted(set(clusters)))}",
                      details={"clusters": sorted(set(clusters))})
