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
    if not folder.is_dir():
        return {}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def diff_tree(folder: Path, files: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(added, changed, removed) relative paths between `folder` on disk and `files`."""
    current = read_tree(folder)
    wanted = {k: v.encode("utf-8") for k, v in files.items()}
    added = sorted(set(wanted) - set(current))
    removed = sorted(set(current) - set(wanted))
    changed = sorted(k for k in set(wanted) & set(current) if wanted[k] != current[k])
    return added, changed, removed


def write_tree(folder: Path, files: dict[str, str]) -> bool:
    """Make `folder` hold exactly `files`. Returns True if anything changed."""
    added, changed, removed = diff_tree(folder, files)
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
