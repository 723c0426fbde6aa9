"""`fleet new cluster|region`: scaffolded inputs render and lint clean at once; bad arguments are
refused with exit 2 and a clear message, and nothing is written."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO, require_shared
from fleet import model
from fleet.cli import cli


def fleet(root: Path, *args: str):
    return CliRunner().invoke(cli, [*args[:2], "--root", str(root), *args[2:]])


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for folder in ("clusters", "regions") for p in (root / folder).rglob("*"))


def free_slug_and_range(root: Path) -> tuple[str, str, str]:
    fleet_model = model.load(root)
    slug = next(s for s in ("ams3", "sgp1", "lon1", "tor1", "blr1", "syd1") if s not in fleet_model.regions)
    taken = {r.vpc_cidr for r in fleet_model.regions.values()}
    cidr = next(c for c in (f"10.{n}.0.0/20" for n in range(130, 250)) if c not in taken)
    control_plane = (REPO / "regions/nyc3/region.yaml").read_text().split("controlPlaneCidr: ")[1].split()[0]
    return slug, cidr, control_plane


def test_scaffolded_region_and_cluster_render_and_lint_clean(fleet_copy: Path) -> None:
    crds, charts = require_shared("crds/flux"), require_shared("charts")
    shutil.copytree(REPO / "tests/rules", fleet_copy / "tests/rules")  # lint runs the rule unit tests too
    slug, cidr, control_plane = free_slug_and_range(fleet_copy)
    made = fleet(fleet_copy, "new", "region", slug, "--vpc-cidr", cidr, "--control-plane-cidr", control_plane)
    assert made.exit_code == 0, made.output
    made = fleet(fleet_copy, "new", "cluster", f"{slug}-prod-01", "--region", slug, "--environment", "production",
                 "--token-secret", "shuttle-token")
    assert made.exit_code == 0, made.output
    loaded = model.load(fleet_copy)
    assert loaded.regions[slug].vpc_cidr == cidr
    assert loaded.clusters[f"{slug}-prod-01"].region.slug == slug
    rendered = fleet(fleet_copy, "render")
    assert rendered.exit_code == 0, rendered.output
    assert (fleet_copy / f"rendered/clusters/{slug}-prod-01/kustomization.yaml").is_file()
    assert (fleet_copy / f"rendered/regions/{slug}/terraform/main.tf").is_file()
    linted = CliRunner().invoke(cli, ["lint", "--root", str(fleet_copy), "--crds", str(crds), "--charts", str(charts)])
    assert linted.exit_code == 0, linted.output


@pytest.mark.parametrize("args, message", [
    (["new", "cluster", "nyc3-prod-01", "--region", "nyc3", "--environment", "production"], "already exists"),
    (["new", "cluster", "nyc3-prod-77", "--region", "mars1", "--environment", "production"], "unknown region 'mars1'"),
    (["new", "cluster", "nyc3-prod-77", "--region", "nyc3", "--environment", "prod"], "unknown environment 'prod'"),
    (["new", "cluster", "NYC3_prod", "--region", "nyc3", "--environment", "production"], "not a DNS-1123 label"),
    (["new", "region", "nyc3", "--vpc-cidr", "10.200.0.0/20", "--control-plane-cidr", "10.100.0.0/20"], "already exists"),
    (["new", "region", "amsterdam", "--vpc-cidr", "10.200.0.0/20", "--control-plane-cidr", "10.100.0.0/20"], "not a DigitalOcean region slug"),
    (["new", "region", "ams3", "--vpc-cidr", "10.110.8.0/24", "--control-plane-cidr", "10.100.0.0/20"], "overlaps 10.110.0.0/20 of region nyc3"),
    (["new", "region", "ams3", "--vpc-cidr", "10.100.0.0/24", "--control-plane-cidr", "10.100.0.0/20"], "overlaps the control-plane range"),
    (["new", "region", "ams3", "--vpc-cidr", "10.200.0.1/20", "--control-plane-cidr", "10.100.0.0/20"], "not an IPv4 network"),
    (["new", "region", "ams3", "--vpc-cidr", "10.192.0.0/12", "--control-plane-cidr", "10.100.0.0/20"], "is /12"),
])
def test_refusals_exit_2_and_write_nothing(fleet_copy: Path, args: list[str], message: str) -> None:
    before = tree(fleet_copy)
    result = fleet(fleet_copy, *args)
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert tree(fleet_copy) == before


def test_overlap_names_the_other_regions_line(fleet_copy: Path) -> None:
    result = fleet(fleet_copy, "new", "region", "ams3", "--vpc-cidr", "10.114.0.0/16", "--control-plane-cidr", "10.100.0.0/20")
    assert result.exit_code == 2 and "regions/fra1/region.yaml:3" in result.output
