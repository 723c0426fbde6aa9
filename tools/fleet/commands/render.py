"""`fleet render` and `fleet render --check`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from .. import model
from ..render.fleet import files_digest, render_fleet
from ..writer import diff_tree, read_tree, write_tree

root_option = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                           show_default=True, help="Fleet repo root.")
INDEX = Path(".cache/render-index.json")


def _by_cluster(tree: dict[str, bytes]) -> dict[str, dict[str, bytes]]:
    grouped: dict[str, dict[str, bytes]] = {}
    for rel, data in tree.items():
        parts = rel.split("/", 2)
        if len(parts) == 3 and parts[0] == "clusters":
            grouped.setdefault(parts[1], {})[parts[2]] = data
    return grouped


def _load_index(root: Path) -> dict:
    try:
        return json.loads((root / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_index(root: Path, index: dict) -> None:
    path = root / INDEX
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(index, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


@click.command("render")
@root_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if rendered/ differs from what the inputs produce.")
@click.option("--no-cache", is_flag=True, help="Render every cluster, ignoring .cache/render-index.json.")
def render_command(root: Path, check: bool, no_cache: bool) -> None:
    """Render every cluster and region into rendered/ (atomically; prunes removed clusters).

    Clusters whose inputs, settings and renderer are unchanged since the last render, and whose
    files on disk are untouched, are reused; --check always renders everything."""
    fleet = model.load(root)
    out = root / "rendered"
    current = read_tree(out)
    if check:
        files = render_fleet(fleet)
        added, changed, removed = diff_tree(out, files, current)
        for label, paths in (("missing", added), ("differs", changed), ("stale", removed)):
            for p in paths:
                click.echo(f"rendered/{p}: {label}", err=True)
        if added or changed or removed:
            click.echo("rendered/ is out of date: run `make render` and commit the result.", err=True)
            raise SystemExit(1)
        click.echo(f"rendered/ is up to date ({len(files)} files, {len(fleet.clusters)} clusters).")
        return
    index = {} if no_cache or os.environ.get("FLEET_NO_CACHE") == "1" else _load_index(root)
    on_disk = _by_cluster(current)
    keys: dict[str, str] = {}
    reused: list[str] = []

    def reuse(cid: str, key: str) -> dict[str, str] | None:
        keys[cid] = key
        entry, disk = index.get(cid), on_disk.get(cid)
        if not entry or entry.get("key") != key or disk is None or files_digest(disk) != entry.get("digest"):
            return None
        reused.append(cid)
        return {rel: data.decode("utf-8") for rel, data in disk.items()}

    files = render_fleet(fleet, reuse=reuse)
    changed_any = write_tree(out, files, current)
    new_tree = _by_cluster({k: v.encode("utf-8") for k, v in files.items()})
    _save_index(root, {cid: {"key": keys[cid], "digest": files_digest(new_tree.get(cid, {}))} for cid in keys})
    state = "updated" if changed_any else "unchanged"
    click.echo(f"rendered/ {state}: {len(files)} files for {len(fleet.clusters)} clusters "
               f"({len(fleet.clusters) - len(reused)} rendered, {len(reused)} reused), {len(fleet.regions)} regions.")


COMMANDS = [render_command]
