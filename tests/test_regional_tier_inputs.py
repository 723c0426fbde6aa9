"""region.yaml `tier:` inputs: bad values are errors at file:line, exit 2, and nothing is written."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fleet.cli import cli
from fleet.tier.model import tier_of
from fleet.writer import read_tree


def _render(root: Path):
    return CliRunner().invoke(cli, ["render", "--root", str(root)])


def _edit(path: Path, old: str, new: str) -> int:
    """Replace `old` by `new` once; the 1-based line where `new` starts."""
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    at = text.index(old)
    path.write_text(text.replace(old, new, 1))
    return text.count("\n", 0, at) + 1


FRA1 = "regions/fra1/region.yaml"
NYC3 = "regions/nyc3/region.yaml"

# case → (file, old text, new text, line offset of the reported value within `new`, expected fragments)
CASES = {
    "bad-size-slug": (FRA1, "  victoriaMetrics:\n    retentionDays: 90",
                      "  victoriaMetrics:\n    retentionDays: 90\n  droplets:\n    vector: {size: c-2vcpu}", 3,
                      ["$.tier.droplets.vector.size", "DigitalOcean size slug"]),
    "ttl-zero": (FRA1, "logsTtlDays: 30", "logsTtlDays: 0", 0, ["$.tier.clickhouse.logsTtlDays", "minimum"]),
    "missing-endpoint": (NYC3, "  clickhouse:\n    url: http://clickhouse.nyc3.starform.internal:8123\n", "", None,
                         ["'clickhouse' is a required property", "$.endpoints"]),
    "overlapping-vpc": (NYC3, "vpcCidr: 10.110.0.0/20", "vpcCidr: 10.114.8.0/21", 0,
                        ["overlaps 10.114.0.0/20 of region fra1", "regions/fra1/region.yaml:3"]),
    "vpc-host-bits": (NYC3, "vpcCidr: 10.110.0.0/20", "vpcCidr: 10.110.0.1/20", 0, ["host bits set"]),
    "control-plane-overlaps-a-region": (FRA1, "controlPlaneCidr: 10.100.0.0/20", "controlPlaneCidr: 10.110.0.0/24", 0,
                                        ["overlaps region nyc3's VPC"]),
    "endpoint-not-the-droplet": (FRA1, "url: http://victoria-metrics.fra1.starform.internal:8427",
                                 "url: http://victoria-metrics.nyc3.starform.internal:8427", 0,
                                 ["does not point at region fra1's victoriaMetrics droplet",
                                  "http://victoria-metrics.fra1.starform.internal:8427"]),
    "endpoint-bypasses-vmauth": (FRA1, "url: http://victoria-metrics.fra1.starform.internal:8427",
                                 "url: http://victoria-metrics.fra1.starform.internal:8428", 0, ["(vmauth"]),
    "tier-environment-without-overlay": (FRA1, "  controlPlaneCidr: 10.100.0.0/20",
                                         "  environment: prodution\n  controlPlaneCidr: 10.100.0.0/20", 0,
                                         ["$.tier.environment", "'prodution' has no overlay", "overlays/<environment>/"]),
    "vector-endpoint-elsewhere": (NYC3, "host: vector.nyc3.starform.internal", "host: 10.110.0.9", 0,
                                  ["does not point at region nyc3's aggregator droplet"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_tier_input_exit_2_at_its_line_nothing_written(fleet_copy: Path, case: str) -> None:
    assert _render(fleet_copy).exit_code == 0
    before = read_tree(fleet_copy / "rendered")
    rel, old, new, offset, expected = CASES[case]
    line = _edit(fleet_copy / rel, old, new)
    result = _render(fleet_copy)
    assert result.exit_code == 2, result.output
    where = f"{rel}:{line + offset}:" if offset is not None else f"{rel}:"
    assert where in result.output, f"{where!r} not in:\n{result.output}"
    for text in expected:
        assert text in result.output, f"{text!r} not in:\n{result.output}"
    assert read_tree(fleet_copy / "rendered") == before


def test_defaults_are_seed_001_sizes() -> None:
    tier = tier_of({"region": "sfo3", "vpcCidr": "10.120.0.0/20", "tier": {"controlPlaneCidr": "10.100.0.0/20"}}, "x")
    assert {k: d.size for k, d in tier.droplets.items()} == {
        "clickhouse": "so-4vcpu-32gb", "victoriaMetrics": "c-4", "vector": "c-2"}
    assert tier.droplet("vector").fqdn == "vector.sfo3.starform.internal"


def test_region_values_reach_the_rendered_tier(fleet_copy: Path) -> None:
    _edit(fleet_copy / FRA1, "    retentionDays: 90", "    retentionDays: 45\n    dedupIntervalSeconds: 15\n"
          "  droplets:\n    clickhouse: {size: m-4vcpu-32gb, volumeGiB: 750}")
    assert _render(fleet_copy).exit_code == 0
    out = fleet_copy / "rendered/regions/fra1"
    flags = (out / "victoria-metrics/victoria-metrics.flags").read_text()
    assert "-retentionPeriod=45d" in flags and "-dedup.minScrapeInterval=15s" in flags
    main = (out / "terraform/main.tf").read_text()
    assert 'size       = "m-4vcpu-32gb"' in main and "size                     = 750" in main
    assert "INTERVAL 30 DAY" in (out / "clickhouse/schema.sql").read_text()


def test_droplet_agents_label_the_tiers_environment(fleet_copy: Path) -> None:
    """Platform alerts page on `environment`: production unless the region file says otherwise."""
    assert tier_of({"region": "sfo3", "vpcCidr": "10.120.0.0/20",
                    "tier": {"controlPlaneCidr": "10.100.0.0/20"}}, "x").environment == "production"
    _edit(fleet_copy / NYC3, "  controlPlaneCidr:", "  environment: staging\n  controlPlaneCidr:")
    assert _render(fleet_copy).exit_code == 0
    for region, env in (("fra1", "production"), ("nyc3", "staging")):
        for path in (fleet_copy / f"rendered/regions/{region}/alloy").glob("*.alloy"):
            text = path.read_text()
            assert f'environment = "{env}",' in text and f'region      = "{region}",' in text, path
