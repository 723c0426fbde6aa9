"""Write rendered/ atomically: build the new tree beside it, then swap.

A failed render never touches rendered/; a render that changes nothing rewrites nothing
(same bytes, same mtimes), and clusters removed from the inputs disappear from the output.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path


def read_tree(folder: Path, skip_units: frozenset[str] | set[str] = frozenset()) -> dict[str, bytes]:
    """Every file below `folder` by relative path (os.walk: one directory listing per folder),
    except inside the units (see unit_of) named in `skip_units`."""
    tree: dict[str, bytes] = {}
    base = str(folder)
    for dirpath, dirs, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        if skip_units:
            dirs[:] = [d for d in dirs if prefix + d not in skip_units]
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                tree[prefix + name] = fh.read()
    return dict(sorted(tree.items()))


def unit_stats(folder: Path, unit: str) -> str:
    """A cheap identity of a unit's files as they sit on disk: names, sizes, mtimes, inodes.
    Any edit, copy or checkout changes it; an untouched unit keeps it."""
    entries = []
    stack = [(str(folder / unit), "")]
    while stack:
        directory, prefix = stack.pop()
        try:
            listing = os.scandir(directory)
        except (FileNotFoundError, NotADirectoryError):
            continue
        with listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, prefix + entry.name + "/"))
                else:
                    st = entry.stat(follow_symlinks=False)
                    entries.append(f"{prefix}{entry.name}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest() if entries else ""


def diff_tree(folder: Path, files: dict[str, str],
              current: dict[str, bytes] | None = None) -> tuple[list[str], list[str], list[str]]:
    """(added, changed, removed) relative paths between `folder` on disk and `files`."""
    current = read_tree(folder) if current is None else current
    wanted = {k: v.encode("utf-8") for k, v in files.items()}
    added = sorted(set(wanted) - set(current))
    removed = sorted(set(current) - set(wanted))
    changed = sorted(k for k in set(wanted) & set(current) if wanted[k] != current[k])
    return added, changed, removed


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def unit_of(rel: str) -> str:
    """The folder swapped as one piece: clusters/<id>, regions/<region>, or a top-level entry."""
    parts = rel.split("/")
    if len(parts) > 2 and parts[0] in ("clusters", "regions"):
        return "/".join(parts[:2])
    return parts[0]


def write_tree(folder: Path, files: dict[str, str], current: dict[str, bytes] | None = None) -> bool:
    """Make `folder` hold exactly `files`. Returns True if anything changed.

    Every changed unit (a cluster's folder, a region's, …) is built complete in a staging folder
    first; only then are units swapped in by rename, and an error during the swap puts back the
    units already swapped. So a failed render leaves `folder` as it was, and a one-cluster change
    touches one cluster's folder. `current` is read_tree(folder), when the caller has read it."""
    added, changed, removed = diff_tree(folder, files, current)
    if not (added or changed or removed):
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
    units = sorted({unit_of(rel) for rel in (*added, *changed, *removed)})
    try:
        _stage(folder, staging, files, set(units), set(added) | set(changed))
        _swap(folder, staging, old, units)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return True


def _stage(folder: Path, staging: Path, files: dict[str, str], units: set[str], rewrite: set[str]) -> None:
    made: set[Path] = set()
    for rel, text in sorted(files.items()):
        if unit_of(rel) not in units:
            continue
        target = staging / rel
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        if rel in rewrite:
            target.write_bytes(text.encode("utf-8"))
        else:  # unchanged file of a changed unit: share the inode (never modified in place)
            _link_or_copy(folder / rel, target)


def _swap(folder: Path, staging: Path, old: Path, units: list[str]) -> None:
    done: list[tuple[str, bool, bool]] = []  # (unit, moved old away, moved new in)
    try:
        for unit in units:
            live, new, parked = folder / unit, staging / unit, old / unit
            had_old = live.exists()
            if had_old:
                parked.parent.mkdir(parents=True, exist_ok=True)
                os.rename(live, parked)
            done.append((unit, had_old, False))
            if new.exists():
                live.parent.mkdir(parents=True, exist_ok=True)
                os.rename(new, live)
                done[-1] = (unit, had_old, True)
    except BaseException:
        for unit, had_old, moved_in in reversed(done):
            if moved_in:
                os.rename(folder / unit, staging / unit)
            if had_old:
                os.rename(old / unit, folder / unit)
        raise
    for parent in sorted({(folder / u).parent for u in units}, reverse=True):
        if parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
