"""`fleet render` and `fleet render --check`."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from ..errors import InputError
from ..lock import rendered_lock

from .. import model
from ..render.fleet import KEEP, render_fleet
from ..writer import diff_tree, journal_path, read_tree, unit_stats, write_tree

root_option = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                           show_default=True, help="Fleet repo root.")
INDEX = Path(".cache/render-index.json")


def _load_index(root: Path) -> dict:
    try:
        return json.loads((root / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _save_index(root: Path, index: dict) -> None:
    """The index only saves work next time: failing to write it is a warning, never a failed render."""
    path = root / INDEX
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(index, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        click.echo(f"fleet: warning: cannot write the render cache {INDEX}: {exc.strerror or exc}; "
                   "rendered/ is written, the next render just reuses nothing", err=True)


def index_entry(fleet: model.Fleet, cid: str, key: str, stats: object) -> dict:
    """What the render index keeps of a cluster: its render key and folder stats (to reuse the
    folder), and the input files its model and render read, with the digest of the cluster.yaml
    they were read for (`fleet lint --changed` maps changed inputs to clusters with them)."""
    cluster = fleet.clusters[cid]
    return {"key": key, "stats": stats, "inputs": cluster.inputs, "doc": fleet.raw.clusters[cid].digest}


def _check(root: Path, fleet: model.Fleet) -> None:
    out = root / "rendered"
    files = render_fleet(fleet)
    added, changed, removed = diff_tree(out, files)
    for label, paths in (("missing", added), ("differs", changed), ("stale", removed)):
        for p in paths:
            click.echo(f"rendered/{p}: {label}", err=True)
    if added or changed or removed:
        click.echo("rendered/ is out of date: run `make render` and commit the result.", err=True)
        raise SystemExit(1)
    click.echo(f"rendered/ is up to date ({len(files)} files, {len(fleet.clusters)} clusters).")


@click.command("render")
@root_option
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if rendered/ differs from what the inputs produce.")
@click.option("--no-cache", is_flag=True, help="Render every cluster, ignoring .cache/render-index.json.")
def render_command(root: Path, check: bool, no_cache: bool) -> None:
    """Render every cluster and region into rendered/ (atomically; prunes removed clusters).

    A cluster whose inputs, settings and renderer are unchanged since the last render, and
    whose folder on disk is untouched since it was written (names, sizes, mtimes, inodes), is
    kept as it is; --check always renders and compares everything."""
    with rendered_lock(root, "render", write=not check) as notes:
        for note in notes:
            click.echo(f"fleet: {note}", err=True)
        _render(root, check, no_cache)


def _render(root: Path, check: bool, no_cache: bool) -> None:
    fleet = model.load(root)
    if check:
        _check(root, fleet)
        return
    out = root / "rendered"
    index = {} if no_cache or os.environ.get("FLEET_NO_CACHE") == "1" else _load_index(root)
    keys: dict[str, str] = {}
    kept: set[str] = set()

    def reuse(cid: str, key: str):
        keys[cid] = key
        entry = index.get(cid)
        if entry and entry.get("key") == key and entry.get("stats") and \
                unit_stats(out, f"clusters/{cid}") == entry["stats"]:
            kept.add(cid)
            return KEEP
        return None

    files = render_fleet(fleet, reuse=reuse)
    kept_units = {f"clusters/{cid}" for cid in kept}
    # Kept folders are neither read nor compared nor rewritten; everything else is diffed.
    try:
        changed_any = write_tree(out, files, read_tree(out, kept_units))
    except OSError as exc:  # the writer has rolled back, or left its journal if it could not
        state = ("the swap could not be undone either: the next fleet command completes it"
                 if journal_path(out).exists() else "rendered/ is unchanged")
        raise InputError(f"cannot write rendered/: {exc.strerror or exc} ({exc.filename or out}); {state}") from None
    new_index = {}
    for cid, key in keys.items():
        stats = index[cid]["stats"] if cid in kept else unit_stats(out, f"clusters/{cid}")
        new_index[cid] = index_entry(fleet, cid, key, stats)
    _save_index(root, new_index)
    state = "updated" if changed_any else "unchanged"
    click.echo(f"rendered/ {state}: {len(fleet.clusters)} clusters ({len(fleet.clusters) - len(kept)} rendered, "
               f"{len(kept)} reused), {len(fleet.regions)} regions.")


COMMANDS = [render_command]
