"""Write rendered/ atomically: build the new tree beside it, then swap.

A failed render never touches rendered/; a render that changes nothing rewrites nothing
(same bytes, same mtimes), and clusters removed from the inputs disappear from the output.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def read_tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` by relative path (os.walk: one directory listing per folder)."""
    tree: dict[str, bytes] = {}
    base = str(folder)
    for dirpath, _dirs, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for name in filenames:
            with open(os.path.join(dirpath, name), "rb") as fh:
                tree[prefix + name] = fh.read()
    return dict(sorted(tree.items()))


def diff_tree(folder: Path, files: dict[str, str],
              current: dict[str, bytes] | None = None) -> tuple[list[str], list[str], list[str]]:
    """(added, changed, removed) relative paths between `folder` on disk and `files`."""
    current = read_tree(folder) if current is None else current
    wanted = {k: v.encode("utf-8") for k, v in files.items()}
    added = sorted(set(wanted) - set(current))
    removed = sorted(set(current) - set(wanted))
    changed = sorted(k for k in set(wanted) & set(current) if wanted[k] != current[k])
    return added, changed, removed


def write_tree(folder: Path, files: dict[str, str], current: dict[str, bytes] | None = None) -> bool:
    """Make `folder` hold exactly `files`. Returns True if anything changed.

    `current` is the tree as read_tree() returned it, when the caller has already read it."""
    added, changed, removed = diff_tree(folder, files, current)
    if not (added or changed or removed):
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.new-", dir=folder.parent))
    try:
        for rel, text in sorted(files.items()):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(text.encode("utf-8"))
        old = folder.parent / f".{folder.name}.old-{os.getpid()}"
        if folder.exists():
            os.rename(folder, old)
        os.rename(staging, folder)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return True
