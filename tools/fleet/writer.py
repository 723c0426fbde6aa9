"""Write rendered/ atomically: build the new tree beside it, commit with a journal, then swap.

A failed render never touches rendered/; a render that changes nothing rewrites nothing
(same bytes, same mtimes), and clusters removed from the inputs disappear from the output.

The switch is several folder renames (one per changed cluster or region), which no reader can
see as one step, so it is made one step with a journal (`.rendered.journal`, beside rendered/):
1. every changed unit is built complete in `.rendered.new-*`;
2. the journal naming the units is written with one atomic rename: this is the commit point;
3. units are swapped in (old ones parked in `.rendered.old-*`), then the journal is removed.
A render killed before 2 leaves rendered/ old; killed after 2, the next fleet command
(`recover`, under the lock) completes the swap before reading anything: rendered/ is then
entirely new. SIGTERM, SIGINT and SIGHUP are held back during 2–3, so they end the process
only after the swap; SIGKILL is what the journal is for. Staged files are not fsynced (one sync
per file is too slow for a 1,000-cluster render), so the journal does not cover a power cut.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import InputError, SourceRef


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


def staging_prefixes(folder: Path) -> tuple[str, ...]:
    """Names of the work folders a render makes beside `folder` (removed when left behind)."""
    return (f".{folder.name}.new-", f".{folder.name}.old-", ".render-tmp")


def journal_path(folder: Path) -> Path:
    return folder.parent / f".{folder.name}.journal"


def write_tree(folder: Path, files: dict[str, str], current: dict[str, bytes] | None = None) -> bool:
    """Make `folder` hold exactly `files`. Returns True if anything changed.

    Every changed unit (a cluster's folder, a region's, …) is built complete in a staging folder
    first; a journal then commits the swap (see the module docstring). An error during the swap
    puts back the units already swapped, so a failed render leaves `folder` as it was, and a
    one-cluster change touches one cluster's folder. The caller holds the render lock.
    `current` is read_tree(folder), when the caller has read it."""
    added, changed, removed = diff_tree(folder, files, current)
    if not (added or changed or removed):
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=staging_prefixes(folder)[0], dir=folder.parent))
    parked = Path(tempfile.mkdtemp(prefix=staging_prefixes(folder)[1], dir=folder.parent))
    units = sorted({unit_of(rel) for rel in (*added, *changed, *removed)})
    settled = True  # False only while a committed journal still needs the work folders
    try:
        _stage(folder, staging, files, set(units), set(added) | set(changed))
        swap = Swap(folder, staging, parked, tuple((u, (staging / u).exists()) for u in units))
        with _signals_held():
            swap.commit()
            settled = False
            try:
                swap.roll_forward()
            except BaseException:
                swap.roll_back()  # if this fails too, the journal stays and the next run rolls forward
                swap.journal.unlink()
                settled = True
                raise
            swap.journal.unlink()
            settled = True
    finally:
        if settled:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(parked, ignore_errors=True)
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


_UNIT = re.compile(r"\A(?:(?:clusters|regions)/)?[A-Za-z0-9][A-Za-z0-9._-]*\Z")


@dataclass(frozen=True)
class Swap:
    """One committed swap: which units move from `staging` into `folder` (has_new False: the unit
    is removed), old units parked in `parked`. Every step is a rename, and both directions are
    idempotent: from any point a crash leaves, roll_forward ends entirely new and roll_back
    entirely old, judging each unit by which of its three places exist."""

    folder: Path
    staging: Path
    parked: Path
    units: tuple[tuple[str, bool], ...]

    @property
    def journal(self) -> Path:
        return journal_path(self.folder)

    def commit(self) -> None:
        """Write the journal with one atomic rename, durable before any unit moves."""
        body = json.dumps({"version": 1, "staging": self.staging.name, "parked": self.parked.name,
                           "units": [[u, new] for u, new in self.units]}, sort_keys=True)
        tmp = self.journal.with_name(self.journal.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.journal)
        _fsync_dir(self.folder.parent)

    @classmethod
    def load(cls, folder: Path) -> "Swap":
        """The swap a journal records; a journal this code did not write is bad input."""
        path = journal_path(folder)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            staging, parked = doc["staging"], doc["parked"]
            units = tuple((str(u), bool(new)) for u, new in doc["units"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"unreadable render journal ({exc}); move it away and re-render",
                             SourceRef(path.name)) from None
        prefixes = staging_prefixes(folder)
        if not (staging.startswith(prefixes[0]) and parked.startswith(prefixes[1]) and "/" not in staging + parked
                and all(_UNIT.match(u) and ".." not in u for u, _ in units)):
            raise InputError("render journal names folders outside the render's own; move it away and re-render",
                             SourceRef(path.name))
        return cls(folder, folder.parent / staging, folder.parent / parked, units)

    def roll_forward(self) -> None:
        for unit, has_new in self.units:
            live, new, old = self.folder / unit, self.staging / unit, self.parked / unit
            if has_new and not new.exists():
                continue  # already in
            if live.exists():
                old.parent.mkdir(parents=True, exist_ok=True)
                os.rename(live, old)
            if has_new:
                live.parent.mkdir(parents=True, exist_ok=True)
                os.rename(new, live)
        _prune_empty_parents(self.folder, [u for u, _ in self.units])

    def roll_back(self) -> None:
        for unit, has_new in reversed(self.units):
            live, new, old = self.folder / unit, self.staging / unit, self.parked / unit
            if has_new and not new.exists() and live.exists():
                new.parent.mkdir(parents=True, exist_ok=True)
                os.rename(live, new)
            if old.exists():
                live.parent.mkdir(parents=True, exist_ok=True)
                os.rename(old, live)
        _prune_empty_parents(self.folder, [u for u, _ in self.units])


def recover(folder: Path) -> list[str]:
    """Finish what a killed render left, before anything reads `folder`; the caller holds the
    render lock exclusively. A committed swap (journal present) is rolled forward; work folders
    are removed. Returns one line per thing done, for the user."""
    done = []
    if journal_path(folder).exists():
        swap = Swap.load(folder)
        try:
            swap.roll_forward()
        except OSError as exc:
            raise InputError(f"cannot complete the interrupted render: {exc.strerror or exc} "
                             f"({exc.filename}); fix that and rerun", SourceRef(swap.journal.name)) from None
        swap.journal.unlink()
        _fsync_dir(folder.parent)
        done.append(f"completed an interrupted render of {folder.name}/ ({len(swap.units)} folder(s) swapped in)")
    for entry in sorted(folder.parent.iterdir()) if folder.parent.is_dir() else []:
        if entry.name.startswith(staging_prefixes(folder)) or entry.name == journal_path(folder).name + ".tmp":
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            done.append(f"removed {entry.name}, left by an interrupted render")
    return done


def _prune_empty_parents(folder: Path, units: list[str]) -> None:
    for parent in sorted({(folder / u).parent for u in units}, reverse=True):
        if parent != folder and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_HELD = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold back the signals that ask a process to stop while the swap runs; delivered after."""
    try:
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
    except (AttributeError, ValueError, OSError):  # no sigmask here: the journal still holds
        yield
        return
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
