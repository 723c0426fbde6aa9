"""The README's PR workflow works: a cluster and a region added by its steps render and lint clean.

The steps are read from README.md itself (the cluster.yaml example, the region's URL rule), so
the README cannot drift from what render and lint accept.
"""
from __future__ import annotations

import re
import textwrap
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from conftest import REPO, require_shared
from fleet import model
from fleet.cli import cli

NEW_REGIONS = ("ams3", "sgp1", "lon1", "tor1", "blr1", "syd1", "sfo3")


def _readme_section(title: str) -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else len(text)]


def _readme_cluster_yaml() -> dict:
    """The cluster.yaml example of "Add a cluster", as a reader would copy it."""
    block = re.search(r"```yaml\n(.*?)```", _readme_section("Add a cluster"), re.S)
    assert block, "README 'Add a cluster' has no cluster.yaml example"
    return yaml.safe_load(block.group(1))


def _unused(existing: set[str], candidates) -> str:
    return next(c for c in candidates if c not in existing)


def _add_cluster(root: Path, doc: dict) -> str:
    existing = {p.name for p in (root / "clusters").iterdir()}
    if doc["id"] in existing:  # the README's example ID was taken by a real cluster since
        doc = {**doc, "id": _unused(existing, (f"{doc['region']}-prod-{n:02d}" for n in range(3, 100)))}
    (root / "clusters" / doc["id"]).mkdir()
    (root / "clusters" / doc["id"] / "cluster.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc["id"]


def _add_region(root: Path) -> str:
    """A region written by "Add a region": its example region.yaml, as a reader would copy it,
    under a slug and a VPC range no region of the fleet has yet."""
    section = _readme_section("Add a region")
    assert "policies/gdpr-labeldrop.yaml" in section and "victoria-metrics" in section
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block, "README 'Add a region' has no region.yaml example"
    example = textwrap.dedent(block.group(1))
    doc = yaml.safe_load(example)
    slug = _unused({p.name for p in (root / "regions").iterdir()}, NEW_REGIONS)
    taken = {model.load(root).regions[s].vpc_cidr for s in model.load(root).regions}
    cidr = _unused(taken, (f"10.{n}.0.0/20" for n in range(130, 250)))
    text = example.replace(doc["region"], slug).replace(doc["vpcCidr"], cidr)
    (root / "regions" / slug).mkdir()
    (root / "regions" / slug / "region.yaml").write_text(text)
    return slug


def _fleet(root: Path, *args: str):
    return CliRunner().invoke(cli, [*args[:1], "--root", str(root), *args[1:]])


def test_adding_a_cluster_and_a_region_by_the_readme_renders_and_lints_clean(fleet_copy: Path) -> None:
    crds, charts = require_shared("crds/flux"), require_shared("charts")
    shutil.copytree(REPO / "tests/rules", fleet_copy / "tests/rules")  # lint runs the rule unit tests too
    before = len(model.load(fleet_copy).clusters)
    _add_cluster(fleet_copy, _readme_cluster_yaml())
    slug = _add_region(fleet_copy)
    _add_cluster(fleet_copy, {**_readme_cluster_yaml(), "id": f"{slug}-prod-01", "region": slug})
    fleet = model.load(fleet_copy)
    assert len(fleet.clusters) == before + 2 and slug in fleet.regions
    rendered = _fleet(fleet_copy, "render")
    assert rendered.exit_code == 0, rendered.output
    assert (fleet_copy / f"rendered/clusters/{slug}-prod-01/kustomization.yaml").is_file()
    assert _fleet(fleet_copy, "render", "--check").exit_code == 0
    linted = _fleet(fleet_copy, "lint", "--crds", str(crds), "--charts", str(charts))
    assert linted.exit_code == 0, linted.output
