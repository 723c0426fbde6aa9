"""`fleet render` and `fleet render --check`."""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import click

from ..errors import InputError
from ..lock import rendered_lock

from .. import model
from ..render.fleet import KEEP, code_digest, render_fleet, render_key
from ..changed import membership
from ..render_index import INDEX, is_current, load_index, read_json, write_json
from ..writer import diff_tree, journal_path, read_tree, unit_stats, write_tree

root_option = click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                           show_default=True, help="Fleet repo root.")
#: What the last render saw of its inputs, for the one-cluster fast path (see `_only_clusters_changed`).
INPUT_STATE = Path(".cache/render-inputs.json")
#: Everything a render can read besides the cluster folders; the running toolchain counts too.
SHARED_INPUTS = ("base", "overlays", "regions", "policies", "tests/rules", "tests/relabel", "pyproject.toml")
PACKAGE = Path(__file__).resolve().parent.parent


def _save_index(root: Path, index: dict) -> None:
    """The index only saves work next time: failing to write it is a warning, never a failed render."""
    try:
        write_json(root, INDEX, index)
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


def _digest_files(paths: list[Path], root: Path) -> str:
    h = hashlib.sha256()
    for path in paths:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        try:
            h.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            h.update(b"unreadable")
    return h.hexdigest()


def _files_under(root: Path, rel: str) -> list[Path]:
    top = root / rel
    if top.is_file():
        return [top]
    found = []
    for dirpath, dirs, files in os.walk(top):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(files) if not f.endswith(".pyc"))
    return found


def input_state(root: Path) -> dict:
    """Digests of the shared inputs (one) and of each cluster folder (`clusters/<id>/`)."""
    shared = _digest_files([p for rel in SHARED_INPUTS for p in _files_under(root, rel)], root)
    shared = hashlib.sha256((shared + _digest_files(_files_under(PACKAGE, "."), PACKAGE)).encode()).hexdigest()
    clusters = {}
    folder = root / "clusters"
    if folder.is_dir():
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.is_dir() and not entry.name.startswith("."):
                clusters[entry.name] = _digest_files(_files_under(root, f"clusters/{entry.name}"), root)
    return {"shared": shared, "clusters": clusters}


def _only_clusters_changed(root: Path, index: dict, previous: dict, state: dict) -> set[str] | None:
    """The clusters to render again when nothing but some cluster folders changed since the last
    render (same shared inputs and toolchain, same set of clusters), or None: render the fleet.

    Regional and platform outputs depend on the shared inputs and on each cluster's membership
    (region, environment, profile); with both unchanged they are current. A cluster is redone
    when its folder changed, when its indexed inputs name a changed folder (a control plane
    probes other clusters), or when its rendered folder is not what the index recorded."""
    if not previous or previous.get("shared") != state["shared"] or \
            set(previous.get("clusters", {})) != set(state["clusters"]) or set(index) != set(state["clusters"]):
        return None
    changed = {cid for cid, digest in state["clusters"].items() if previous["clusters"][cid] != digest}
    prefixes = tuple(f"clusters/{cid}/" for cid in changed)
    out = root / "rendered"
    todo = set(changed)
    for cid, entry in index.items():
        if not isinstance(entry, dict) or not entry.get("stats") or not isinstance(entry.get("inputs"), list):
            return None
        if prefixes and any(str(f).startswith(prefixes) for f in entry["inputs"]):
            todo.add(cid)
        elif unit_stats(out, f"clusters/{cid}") != entry["stats"]:
            todo.add(cid)
    return todo


def _render_some(root: Path, todo: set[str], index: dict, previous: dict, state: dict) -> bool:
    """Render only `todo` (see `_only_clusters_changed`); False when a cluster's membership moved
    and the whole fleet must be rendered after all."""
    fleet = model.load(root, todo) if todo else None
    memberships = previous.get("membership", {})
    if fleet is not None and any(_membership(fleet, cid) != memberships.get(cid) for cid in todo):
        return False
    out = root / "rendered"
    files = render_fleet(fleet, only=todo, clusters_only=True) if fleet is not None else {}
    units = {f"clusters/{cid}" for cid in todo}
    skip = {u for u in _top_units(out) if u not in units}
    changed_any = _write(out, files, skip) if todo else False
    new_index = dict(index)
    if fleet is not None:
        code = code_digest(fleet)
        for cid in todo:
            new_index[cid] = index_entry(fleet, cid, render_key(code, fleet.clusters[cid]),
                                         unit_stats(out, f"clusters/{cid}"))
    _save_index(root, new_index)
    _save_state(root, state, memberships)
    verb = "updated" if changed_any else "unchanged"
    click.echo(f"rendered/ {verb}: {len(state['clusters'])} clusters ({len(todo)} rendered, "
               f"{len(state['clusters']) - len(todo)} reused); nothing else changed.")
    return True


def _write(out: Path, files: dict[str, str], untouched: set[str]) -> bool:
    """write_tree over rendered/, the units in `untouched` neither read nor compared; whether
    anything changed. A failed write is bad input saying what state rendered/ is in: the
    writer has rolled back, or left its journal if it could not."""
    try:
        return write_tree(out, files, read_tree(out, untouched))
    except OSError as exc:
        state = ("the swap could not be undone either: the next fleet command completes it"
                 if journal_path(out).exists() else "rendered/ is unchanged")
        raise InputError(f"cannot write rendered/: {exc.strerror or exc} ({exc.filename or out}); {state}") from None


def _top_units(out: Path) -> set[str]:
    """Every unit (writer.unit_of) under rendered/: clusters/<id>, regions/<r>, top-level entries."""
    units = set()
    if not out.is_dir():
        return units
    for entry in os.scandir(out):
        if entry.name in ("clusters", "regions") and entry.is_dir():
            units.update(f"{entry.name}/{child.name}" for child in os.scandir(entry.path))
        else:
            units.add(entry.name)
    return units


def _membership(fleet: model.Fleet, cid: str) -> list[str]:
    """The cluster's place in the fleet (changed.membership: a change reshapes regional outputs)."""
    return list(membership(fleet.raw.clusters[cid].data))


def _save_state(root: Path, state: dict, memberships: dict) -> None:
    try:
        write_json(root, INPUT_STATE, {**state, "membership": memberships})
    except OSError:
        pass  # the state only saves work next time; _save_index has warned already if .cache is unwritable


def _load_state(root: Path) -> dict:
    return read_json(root, INPUT_STATE)


def _render(root: Path, check: bool, no_cache: bool) -> None:
    use_cache = not no_cache and os.environ.get("FLEET_NO_CACHE") != "1"
    state = input_state(root) if not check else None
    if use_cache and state is not None:
        # Fast path: only cluster folders changed since the last render (a one-cluster PR).
        index, previous = load_index(root), _load_state(root)
        todo = _only_clusters_changed(root, index, previous, state)
        if todo is not None and _render_some(root, todo, index, previous, state):
            return
    fleet = model.load(root)
    if check:
        _check(root, fleet)
        return
    out = root / "rendered"
    index = {} if not use_cache else load_index(root)
    keys: dict[str, str] = {}
    kept: set[str] = set()

    def reuse(cid: str, key: str):
        keys[cid] = key
        if is_current(index, out, cid, key):
            kept.add(cid)
            return KEEP
        return None

    files = render_fleet(fleet, reuse=reuse)
    kept_units = {f"clusters/{cid}" for cid in kept}
    # Kept folders are neither read nor compared nor rewritten; everything else is diffed.
    changed_any = _write(out, files, kept_units)
    new_index = {}
    for cid, key in keys.items():
        stats = index[cid]["stats"] if cid in kept else unit_stats(out, f"clusters/{cid}")
        new_index[cid] = index_entry(fleet, cid, key, stats)
    _save_index(root, new_index)
    _save_state(root, state, {cid: _membership(fleet, cid) for cid in fleet.clusters})
    verb = "updated" if changed_any else "unchanged"
    click.echo(f"rendered/ {verb}: {len(fleet.clusters)} clusters ({len(fleet.clusters) - len(kept)} rendered, "
               f"{len(kept)} reused), {len(fleet.regions)} regions.")


COMMANDS = [render_command]
