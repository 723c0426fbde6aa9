"""README's bootstrap section names exactly the out-of-band Secrets the rendered clusters reference."""
from __future__ import annotations

import re
from pathlib import Path

from fleet import model
from fleet.checks import CheckContext
from fleet.checks.namespace_prune import referenced_secrets
from fleet.k8s.objects import rendered_objects

ROOT = Path(__file__).resolve().parents[1]


def _section(text: str) -> str:
    start = text.index("## Bootstrap a cluster")
    return text[start:text.index("\n## ", start + 1)]


def documented(section: str) -> tuple[set[str], set[tuple[str, str]]]:
    """(namespaces the commands create, (namespace, Secret) pairs of the table)."""
    namespaces = set(re.findall(r"kubectl create namespace ([a-z0-9-]+)", section))
    pairs = set()
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")] if row.startswith("| `") else []
        if len(cells) == 4:
            (namespace,) = re.findall(r"`([^`]+)`", cells[1])
            pairs |= {(namespace, name) for name in re.findall(r"`([^`]+)`", cells[0])}
    return namespaces, pairs


def rendered_secrets(root: Path) -> set[tuple[str, str]]:
    ctx = CheckContext(root=root, fleet=model.load(root), rendered=root / "rendered")
    by_cluster: dict[str, list] = {}
    for obj in rendered_objects(ctx):
        by_cluster.setdefault(obj.cluster, []).append(obj)
    pairs = set()
    for cid, cluster in ctx.fleet.clusters.items():
        for ns, names in referenced_secrets(ctx, cluster, by_cluster.get(cid, [])).items():
            pairs |= {(ns, name) for name in names}
    return pairs


def test_bootstrap_section_matches_the_rendered_secret_references() -> None:
    namespaces, pairs = documented(_section((ROOT / "README.md").read_text()))
    rendered = rendered_secrets(ROOT)
    assert pairs == rendered
    assert namespaces == {ns for ns, _ in rendered} - {"flux-system"}   # `flux install` creates flux-system


def test_a_stale_secret_name_is_caught() -> None:
    section = _section((ROOT / "README.md").read_text()).replace("`shuttle-registration-staging`", "`shuttle-staging`")
    _, pairs = documented(section)
    assert pairs != rendered_secrets(ROOT)
    assert ("starform-system", "shuttle-staging") in pairs
