"""The two sides of a diff: REF rendered in a temporary git worktree, and the working tree.

REF is rendered by REF's own code (its `tools/` first on `PYTHONPATH`, in a subprocess), so a
renderer change shows in the diff like an input change. The working tree is rendered in memory
by the running code; clusters whose render key matches `.cache/render-index.json` and whose
folder is untouched (what `fleet render` would keep) are read from `rendered/` instead. When REF's
toolchain is the running one, both sides render here and a cluster with the same render key on
both sides is left out of both (a one-cluster change renders one cluster per side).

The temporary worktree is removed whatever happens: an error, Ctrl-C, SIGTERM or SIGHUP (both
turned into an exception while it exists, so `finally` runs).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import InputError, SourceRef
from ..render_index import is_current, load_index
from ..writer import read_tree

#: Where `fleet render` keeps its reuse index (commands/render.py).
#: What REF's render subprocess may print back in an error message (its last lines).
STDERR_TAIL = 1500


@dataclass(frozen=True)
class Base:
    """The resolved base: what the user asked for and the commit it names."""

    ref: str
    commit: str


def git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)


def resolve_base(root: Path, ref: str | None) -> Base:
    """The commit REF names; without REF, the merge base of HEAD with `main` (or `origin/main`).

    An unknown REF, or no `main` to take a merge base with, is bad input (exit 2)."""
    if git(root, "rev-parse", "--git-dir").returncode != 0:
        raise InputError(f"{root} is not inside a git repository: `fleet diff` compares against a git ref",
                         SourceRef(str(root)))
    if ref is not None:
        found = git(root, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
        if found.returncode != 0 or not found.stdout.strip():
            raise InputError(f"unknown git ref {ref!r}: no commit by that name", SourceRef("--base"),
                             expected="a branch, tag or commit (e.g. main, origin/main, HEAD~1)")
        return Base(ref, found.stdout.strip())
    for main in ("main", "origin/main"):
        if git(root, "rev-parse", "--verify", "--quiet", f"{main}^{{commit}}").returncode == 0:
            merged = git(root, "merge-base", "HEAD", main)
            if merged.returncode == 0 and merged.stdout.strip():
                return Base(f"merge-base(HEAD, {main})", merged.stdout.strip())
            raise InputError(f"HEAD has no merge base with {main}", SourceRef("--base"),
                             expected="--base REF naming the commit to compare with")
    raise InputError("no `main` branch to take the merge base with", SourceRef("--base"),
                     expected="--base REF naming the commit to compare with")


class Interrupted(Exception):
    """SIGTERM or SIGHUP arrived while the temporary worktree existed."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


#: The process whose SIGTERM/SIGHUP raise `Interrupted` while a worktree exists (None: none).
_OWNER: int | None = None


def _default_signals_in_child() -> None:
    """A process forked inside the block (a render pool's worker) gets the default SIGTERM and
    SIGHUP from birth, as if the block were not there: a pool ends its workers with SIGTERM,
    and a Python-level handler would first have to run in each of them."""
    if _OWNER is not None and os.getpid() != _OWNER:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except ValueError:  # forked from another thread: the handler below still copes
                pass


os.register_at_fork(after_in_child=_default_signals_in_child)


@contextmanager
def _signals_as_exceptions() -> Iterator[None]:
    """SIGTERM/SIGHUP raise `Interrupted` (SIGINT already raises KeyboardInterrupt), so the
    worktree's cleanup runs before the process ends; the old handlers come back afterwards."""
    global _OWNER
    owner = os.getpid()

    def interrupt(signum, _frame):
        if os.getpid() != owner:  # a forked render worker (a pool ends its workers with SIGTERM)
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise Interrupted(signum)

    old = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            old[sig] = signal.signal(sig, interrupt)
        except ValueError:  # not the main thread: signals cannot be caught here
            pass
    previous_owner, _OWNER = _OWNER, owner
    try:
        yield
    finally:
        _OWNER = previous_owner
        for sig, handler in old.items():
            signal.signal(sig, handler)


@contextmanager
def temporary_worktree(root: Path, commit: str) -> Iterator[Path]:
    """A detached worktree of `commit` in a temporary folder, removed (and pruned from git's
    list) on the way out, however the block ends. Its committed `rendered/` is left out: the
    base is rendered from its inputs, and checking out a 1,000-cluster rendered/ (24,000 files)
    cost seconds of a diff."""
    with _signals_as_exceptions():
        parent = Path(tempfile.mkdtemp(prefix="fleet-diff-"))
        path = parent / "base"
        try:
            added = git(root, "worktree", "add", "--detach", "--no-checkout", "--quiet", str(path), commit)
            if added.returncode == 0:
                added = git(path, "checkout", "--quiet", commit, "--", ":/", ":!/rendered")
            if added.returncode != 0:
                raise InputError(f"cannot check out {commit[:12]} in a temporary worktree: "
                                 f"{added.stderr.strip()[-STDERR_TAIL:]}", SourceRef("--base"))
            yield path
        finally:
            # Shield the cleanup from a second signal: it is short, and an interrupted one leaves
            # a stale worktree entry behind.
            blocked = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
            previous = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
            try:
                removed = git(root, "worktree", "remove", "--force", str(path)).returncode == 0
                shutil.rmtree(parent, ignore_errors=True)
                if not removed and str(path) in git(root, "worktree", "list", "--porcelain").stdout:
                    # `add` was cut short: its entry points at a folder now gone, which is
                    # exactly what prune removes (other worktrees' folders exist).
                    git(root, "worktree", "prune")
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def start_base_render(worktree: Path) -> subprocess.Popen:
    """`fleet render` of the worktree by the worktree's own code (a subprocess, so it runs while
    the working tree renders here)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(worktree / "tools"),
                                                                       os.environ.get("PYTHONPATH")])))
    env["FLEET_NO_CACHE"] = "1"
    return subprocess.Popen([sys.executable, "-c", "from fleet.cli import main; main()", "render", "--root", str(worktree)],
                            cwd=worktree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish_base_render(proc: subprocess.Popen, worktree: Path, base: Base) -> dict[str, bytes]:
    """The rendered/ tree of the base, once its render has finished; a failed render is bad input."""
    _, stderr = proc.communicate()
    if proc.returncode != 0:
        tail = stderr.strip()[-STDERR_TAIL:]
        raise InputError(f"cannot render the base {base.ref} ({base.commit[:12]}): its `fleet render` exited "
                         f"{proc.returncode}: {tail}", SourceRef("--base"))
    return read_tree(worktree / "rendered")


def stop(proc: subprocess.Popen) -> None:
    """End a base render still running (the diff failed or was interrupted)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stderr is not None:
        proc.stderr.close()


def render_working_tree(root: Path, skip: set[str] = frozenset(), fleet=None) -> dict[str, bytes]:
    """Every rendered file the working tree's inputs produce, as bytes by path under rendered/,
    except the clusters in `skip`.

    Clusters `fleet render` would keep (same render key, folder untouched since written) are
    read from disk; the rest render in memory. Nothing is written."""
    from .. import model
    from ..lock import rendered_lock
    from ..render.fleet import KEEP, render_fleet

    with rendered_lock(root, "diff", write=False):
        fleet = fleet or model.load(root)
        index = {} if os.environ.get("FLEET_NO_CACHE") == "1" else load_index(root)
        out = root / "rendered"
        kept: list[str] = []

        def reuse(cid: str, key: str):
            if is_current(index, out, cid, key):
                kept.append(cid)
                return KEEP
            return None

        files = render_fleet(fleet, only=set(fleet.clusters) - set(skip), reuse=reuse)
        tree = {path: text.encode("utf-8") for path, text in files.items()}
        for cid in kept:
            tree.update({f"clusters/{cid}/{rel}": data for rel, data in read_tree(out / "clusters" / cid).items()})
    return dict(sorted(tree.items()))


def same_toolchain(root: Path, commit: str) -> bool:
    """Whether REF renders with the code running here: the running `fleet` package is the
    working tree's `tools/fleet` (or the repository has none, on either side), and git sees no
    change under `tools/` or to `pyproject.toml` between REF and the working tree."""
    import fleet

    running = Path(fleet.__file__).resolve().parent.parent
    has_tools = (root / "tools" / "fleet").is_dir()
    if has_tools and running != (root / "tools").resolve():
        return False
    changed = git(root, "diff", "--quiet", commit, "--", "tools", "pyproject.toml").returncode != 0
    untracked = git(root, "ls-files", "--others", "--exclude-standard", "--", "tools").stdout.strip()
    return not changed and not untracked


def render_both(root: Path, worktree: Path, base: Base) -> tuple[dict[str, bytes], dict[str, bytes]]:
    """(base tree, working tree) rendered here, for REF with the same toolchain: a cluster whose
    render key (merged inputs, settings, renderer) is the same on both sides renders to the same
    files (the render cache's contract), so it is left out of both trees."""
    from .. import model
    from ..render.fleet import code_digest, render_fleet, render_key

    head = model.load(root)
    try:
        old = model.load(worktree)
    except InputError as exc:
        raise InputError(f"cannot render the base {base.ref} ({base.commit[:12]}): {exc.render()}",
                         SourceRef("--base")) from None
    head_code, old_code = code_digest(head), code_digest(old)
    same = {cid for cid, cluster in head.clusters.items() if cid in old.clusters
            and render_key(head_code, cluster) == render_key(old_code, old.clusters[cid])}
    after = render_working_tree(root, same, head)
    before = render_fleet(old, only=set(old.clusters) - same)
    return {path: text.encode("utf-8") for path, text in before.items()}, after


def describe_head(root: Path) -> dict:
    """The compared side: HEAD's commit and whether the working tree differs from it."""
    head = git(root, "rev-parse", "--verify", "--quiet", "HEAD").stdout.strip()
    dirty = bool(git(root, "status", "--porcelain").stdout.strip())
    return {"commit": head, "dirty": dirty}
