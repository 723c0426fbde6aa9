"""`fleet new cluster|region`: scaffold an input file that renders and lints clean at once."""
from __future__ import annotations

from pathlib import Path

import click

from .. import scaffold
from .render import root_option


@click.group("new")
def new_group() -> None:
    """Scaffold a new cluster or region input (then `make render lint`)."""


@new_group.command("cluster")
@root_option
@click.argument("cluster_id")
@click.option("--region", required=True, help="A folder in regions/.")
@click.option("--environment", required=True, help="A folder in overlays/.")
@click.option("--token-secret", default="shuttle-registration", show_default=True,
              help="Name of the Secret holding Shuttle's registration token (the token never enters git).")
def new_cluster(root: Path, cluster_id: str, region: str, environment: str, token_secret: str) -> None:
    """Write clusters/CLUSTER_ID/cluster.yaml."""
    path = scaffold.new_cluster(root, cluster_id, region, environment, token_secret)
    click.echo(f"wrote {path.relative_to(root).as_posix()}; next: `make render lint`, commit inputs and rendered/")


@new_group.command("region")
@root_option
@click.argument("slug")
@click.option("--vpc-cidr", required=True, help="The region's VPC range (/16–/28), disjoint from every other.")
@click.option("--control-plane-cidr", required=True, help="The control plane's VPC range (peered; the only source of reads).")
def new_region(root: Path, slug: str, vpc_cidr: str, control_plane_cidr: str) -> None:
    """Write regions/SLUG/region.yaml (the region's telemetry tier, README "Add a region")."""
    path = scaffold.new_region(root, slug, vpc_cidr, control_plane_cidr)
    click.echo(f"wrote {path.relative_to(root).as_posix()}; next: `make render lint`, apply the tier "
               "(README \"Add a region\" step 3), then add clusters")


COMMANDS = [new_group]
