"""`fleet render` and `fleet render --check`."""
from __future__ import annotations

from pathlib import Path

import click

from .. import model
from ..render.fleet import render_fleet
from ..writer import diff_tree, write_tree

root_option = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                           show_default=True, help="Fleet repo root.")


@click.command("render")
@root_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if rendered/ differs from what the inputs produce.")
def render_command(root: Path, check: bool) -> None:
    """Render every cluster and region into rendered/ (atomically; prunes removed clusters)."""
    fleet = model.load(root)
    files = render_fleet(fleet)
    out = root / "rendered"
    if check:
        added, changed, removed = diff_tree(out, files)
        for label, paths in (("missing", added), ("differs", changed), ("stale", removed)):
            for p in paths:
                click.echo(f"rendered/{p}: {label}", err=True)
        if added or changed or removed:
            click.echo("rendered/ is out of date: run `make render` and commit the result.", err=True)
            raise SystemExit(1)
        click.echo(f"rendered/ is up to date ({len(files)} files, {len(fleet.clusters)} clusters).")
        return
    changed_any = write_tree(out, files)
    state = "updated" if changed_any else "unchanged"
    click.echo(f"rendered/ {state}: {len(files)} files for {len(fleet.clusters)} clusters, {len(fleet.regions)} regions.")


COMMANDS = [render_command]
