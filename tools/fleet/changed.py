"""`fleet lint --changed`: what a change can affect, so lint checks only that.

The change is every path that differs from the base (git: the merge base of HEAD with `main`
or `--base REF`, against the working tree, plus untracked files). What it affects is decided
from the paths and the render index (`.cache/render-index.json`, written by `fleet render`: per
cluster, the input files its render and model are built from):

* `clusters/<id>/...` and `rendered/clusters/<id>/...` affect that cluster, and every cluster
  whose inputs list the file (a control-plane cluster reads the clusters it probes);
* a file some clusters' inputs list (an overlay, a region) affects those clusters;
* a cluster the index does not know (new, or its cluster.yaml differs from the indexed one) is
  affected by any input change; without an index, every cluster is;
* anything else (base/, policies/, ...) affects every cluster;
* a cluster added, removed, or moved to another region, environment or profile is also the
  pseudo-path `@membership` (rule sets are merged per region); a cluster.yaml change to its
  vmagent values or relabel patches (or membership) is also `@relabel-inputs`;
* the toolchain itself (tools/, pyproject.toml) changes every check: a full lint.

Each check declares its SCOPE and READS (fleet.checks): a "fleet" check runs whole when a
changed path matches its READS and is skipped otherwise (its findings are the base's); a
"cluster" check runs on the affected clusters, on every cluster when a changed path outside
the clusters matches its READS; a "file" check lints the changed files (all of them when its
READS change). A skipped check, or an unaffected cluster, has the same inputs as at the base,
so its findings are the base's: --changed reports every finding the change can add or alter.
"""
from __future__ import annotations

import fnmatch
import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import yamlio
from .errors import InputError
from .render_index import INDEX, load_index  # noqa: F401  (INDEX: callers read it from here)

#: Paths whose change makes every check run whole (the checks' own code and dependencies).
TOOLCHAIN = ("tools/*", "pyproject.toml")
#: Paths no check reads: documentation and the test suite's own code.
INERT = ("README.md", "*.md", ".ci/*", ".gitignore", ".pre-commit-config.yaml")
INERT_TESTS = ("tests/*",)
READ_TESTS = ("tests/rules/*", "tests/relabel/*")
MEMBERSHIP = "@membership"
MEMBERSHIP_KEYS = ("id", "region", "environment", "profile")
#: A cluster.yaml change to what its vmagent relabels with (its vmagent values, its relabel
#: patches) or to its membership: checks that read every cluster's relabel pipelines
#: (relabel-vs-rules) need not run for a cluster change that touches neither.
RELABEL_INPUTS = "@relabel-inputs"


def _git(root: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"`git {' '.join(args)}` failed: {proc.stderr.strip() or proc.returncode}",
                         expected="a git checkout whose base ref exists (see --base)")
    return proc.stdout


def merge_base(root: Path, base: str | None) -> str:
    """The commit the change is measured from: HEAD's merge base with `base` (default `main`)."""
    return _git(root, "merge-base", "HEAD", base or "main").strip()


def changed_paths(root: Path, base_commit: str) -> set[str]:
    """Paths (relative to `root`) that differ between `base_commit` and the working tree, untracked included."""
    diff = _git(root, "diff", "--name-only", "--no-renames", "--relative", base_commit, "--")
    untracked = _git(root, "ls-files", "--others", "--exclude-standard")
    return {line for line in (diff + untracked).splitlines() if line}


def _doc_at(root: Path, commit: str | None, rel: str) -> dict | None:
    """The YAML mapping at `rel` (in the working tree, or at `commit`); None if absent or not a mapping."""
    try:
        if commit is None:
            text = (root / rel).read_text(encoding="utf-8")
        else:
            proc = subprocess.run(["git", "-C", str(root), "show", f"{commit}:./{rel}"], capture_output=True, text=True)
            if proc.returncode != 0:
                return None
            text = proc.stdout
        doc = yamlio.plain(yamlio.load_text(text, rel))
    except (OSError, UnicodeDecodeError, InputError):
        return None
    return doc if isinstance(doc, dict) else None


def membership(doc: dict | None) -> tuple | None:
    """A cluster's place in the fleet, from its cluster.yaml (None: no readable document)."""
    return None if doc is None else tuple(str(doc.get(k)) for k in MEMBERSHIP_KEYS)


def _relabel_inputs(doc: dict | None) -> tuple | None:
    if doc is None:
        return None
    components = doc.get("components")
    vmagent = components.get("vmagent") if isinstance(components, dict) else None
    return (repr(vmagent), repr(doc.get("relabel")), membership(doc))


def _matches(path: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def inert(path: str) -> bool:
    """A path no check reads (documentation, the test suite's code)."""
    return _matches(path, INERT) or (_matches(path, INERT_TESTS) and not _matches(path, READ_TESTS))


def _cluster_folder(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) >= 3 and parts[0] == "clusters":
        return parts[1]
    if len(parts) >= 4 and parts[0] == "rendered" and parts[1] == "clusters":
        return parts[2]
    return None


def doc_digest(name: str, text: str) -> str:
    """Same as inputs.Document.digest for a cluster.yaml: the index stores it to know it is current."""
    return hashlib.sha256(f"{name}\0{text}".encode()).hexdigest()


@dataclass
class Change:
    """The changed paths and the clusters they affect."""

    paths: set[str]
    clusters: set[str]                      # every cluster folder now in the tree
    toolchain: bool = False                 # the checks themselves changed: lint everything
    all_clusters_by: set[str] = field(default_factory=set)   # changed paths that affect every cluster
    by_path: dict[str, set[str]] = field(default_factory=dict)  # other changed path → clusters it affects

    def cluster_scope(self, reads: tuple[str, ...]) -> set[str] | None:
        """Clusters a "cluster" check must lint (None: all of them)."""
        if self.toolchain or any(_matches(p, reads) for p in self.all_clusters_by):
            return None
        out: set[str] = set()
        for affected in self.by_path.values():
            out |= affected
        return out & self.clusters

    def fleet_runs(self, reads: tuple[str, ...]) -> bool:
        return self.toolchain or any(_matches(p, reads) for p in self.paths if not inert(p))

    def file_scope(self, reads: tuple[str, ...]) -> set[str] | None:
        """Files a "file" check must lint (None: all of them)."""
        if self.toolchain or any(_matches(p, reads) for p in self.paths if not inert(p)):
            return None
        return {p for p in self.paths if not p.startswith("@") and not inert(p)}


def analyse(root: Path, base: str | None) -> Change:
    """The change of the working tree against the merge base, and what it affects."""
    commit = merge_base(root, base)
    paths = changed_paths(root, commit)
    folder = root / "clusters"
    clusters = {p.name for p in folder.iterdir() if p.is_dir()} if folder.is_dir() else set()
    change = Change(set(paths), clusters)
    if any(_matches(p, TOOLCHAIN) for p in paths):
        change.toolchain = True
        return change
    index = load_index(root)
    current = _current_entries(root, index, clusters)
    readers: dict[str, set[str]] = {}
    for cid, entry in current.items():
        for rel in entry.get("inputs") or []:
            readers.setdefault(rel, set()).add(cid)
    unknown = clusters - set(current)
    for path in sorted(paths):
        if inert(path):
            continue
        own = _cluster_folder(path)
        if own is not None:
            change.by_path[path] = {own} | readers.get(path, set())
            if path == f"clusters/{own}/cluster.yaml":
                before, after = _doc_at(root, commit, path), _doc_at(root, None, path)
                if membership(before) != membership(after):
                    change.paths.add(MEMBERSHIP)
                if before is None or after is None or _relabel_inputs(before) != _relabel_inputs(after):
                    change.paths.add(RELABEL_INPUTS)
        elif path in readers:
            change.by_path[path] = readers[path] | unknown
        else:
            change.all_clusters_by.add(path)
    return change


def _current_entries(root: Path, index: dict, clusters: set[str]) -> dict[str, dict]:
    """Index entries whose cluster.yaml is the one on disk now (their inputs list is current)."""
    out = {}
    for cid in clusters:
        entry = index.get(cid)
        if not isinstance(entry, dict) or "doc" not in entry:
            continue
        rel = f"clusters/{cid}/cluster.yaml"
        try:
            text = (root / rel).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if entry["doc"] == doc_digest(rel, text):
            out[cid] = entry
    return out
