"""The GDPR labeldrop policy: load, validate, and answer concrete questions about it.

The policy file format is documented in policies/README.md and pinned by
fleet/schemas/policy.schema.json. This module knows nothing about relabel rules: it says which
label names are forbidden, which jobs may leave, and whether a destination is external.
The abstract analysis (proof.py) turns the patterns into languages; here they stay RE2.
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import urlsplit

import re2

from .. import schema, yamlio
from ..errors import InputError, InputErrors, SourceRef

EXTERNAL, IN_REGION = "external", "in-region"
DEFAULT_POLICY = Path("policies") / "gdpr-labeldrop.yaml"
_RE2_META = set("\\.^$|?*+()[]{}")


def anchored(pattern: str) -> Any:
    """Compile an RE2 pattern the way relabeling does: the whole string must match."""
    return re2.compile(f"^(?:{pattern})$")


def is_literal(pattern: str) -> bool:
    """True when the pattern matches exactly one string, itself (no metacharacters)."""
    return not (set(pattern) & _RE2_META)


@dataclass(frozen=True)
class ForbiddenLabel:
    pattern: str
    reason: str
    source: SourceRef


@dataclass(frozen=True)
class Destination:
    name: str
    klass: str
    url: str
    source: SourceRef


@dataclass
class Policy:
    """A loaded, validated policy. `source` is the file it came from (for messages)."""

    forbidden: list[ForbiddenLabel]
    derived_forbidden: bool
    hashed_forbidden: bool
    job_allow: tuple[str, ...]
    require_job: bool
    destinations: list[Destination]
    default_destination: str
    files_default: str
    files_in_region: tuple[str, ...] = ()
    files_external: tuple[str, ...] = ()
    source: str = ""
    #: the repository root the `relabel_files` globs are relative to (the directory holding
    #: `policies/`); None: the current directory
    root: Path | None = None
    _compiled: dict = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def forbidden_regex(self) -> Any:
        """One anchored RE2 matching every forbidden label name."""
        return anchored("|".join(f"(?:{f.pattern})" for f in self.forbidden))

    def is_forbidden(self, name: str) -> bool:
        return bool(self.forbidden_regex.match(name))

    @property
    def forbidden_patterns(self) -> list[str]:
        return [f.pattern for f in self.forbidden]

    @cached_property
    def discovery_patterns(self) -> list[str]:
        """Service-discovery meta labels whose *values* are forbidden values.

        Why: a scrape copies its target's labels onto every series it scrapes, and target
        labels are made by `discovery.relabel` from meta labels such as
        `__meta_kubernetes_pod_label_starform_io_project_id` (pod label `starform.io/project-id`).
        These names never leave (the scrape deletes `__meta_*`), but a value copied from them is
        a customer id.  For each forbidden pattern `p` the meta forms are
        `__meta_<anything>_(label|annotation)_p`, and for a KSM form `label_q` also
        `__meta_<anything>_(label|annotation)_q` (KSM prefixes pod labels with `label_`).
        """
        out = []
        for f in self.forbidden:
            out.append(f"__meta_.+_(?:label|annotation)_(?:{f.pattern})")
            if f.pattern.startswith("label_"):
                out.append(f"__meta_.+_(?:label|annotation)_(?:{f.pattern[len('label_'):]})")
        return out

    @cached_property
    def discovery_regex(self) -> Any:
        return anchored("|".join(f"(?:{p})" for p in self.discovery_patterns))

    def is_discovery_origin(self, name: str) -> bool:
        """A discovery label whose value is a customer id (see `discovery_patterns`)."""
        return bool(self.discovery_regex.match(name))

    @property
    def literal_forbidden_names(self) -> list[str]:
        """Forbidden names spelled literally: the analysis tracks these by name."""
        return [f.pattern for f in self.forbidden if is_literal(f.pattern)]

    def example_forbidden_names(self) -> list[str]:
        """Readable forbidden names for witnesses (`label_starform_io_.+` → ..._project_id)."""
        out = list(self.literal_forbidden_names)
        for f in self.forbidden:
            if is_literal(f.pattern):
                continue
            stem = f.pattern.replace(".+", "project_id").replace(".*", "project_id").replace("[a-z]+", "pod")
            if self.is_forbidden(stem):
                out.append(stem)
        return out

    def job_allowed(self, job: str | None) -> bool:
        if not job:
            return not self.require_job
        return job in self.job_allow

    def classify_url(self, url: str | None, in_region: Iterable[str] = ()) -> tuple[str, str]:
        """(class, destination name) of a remote-write URL; non-literal URLs (None) take the default.

        `in_region` lists extra URLs known to be this cluster's own region (from the fleet model).
        """
        if url is None:
            return self.default_destination, "unknown"
        if not plain_url(url):
            return EXTERNAL, "unsafe-url"
        for known in in_region:
            if url.rstrip("/") == known.rstrip("/") or url.startswith(known.rstrip("/") + "/"):
                return IN_REGION, "region"
        for dest in self.destinations:
            rx = self._compiled.get(dest.url) or self._compiled.setdefault(dest.url, anchored(dest.url))
            if rx.match(url):
                return dest.klass, dest.name
        return self.default_destination, "default"

    def classify_file(self, path: str | Path) -> str:
        """Destination class of a bare YAML relabel list given on the command line.

        The globs name files of *this* repository: the path is resolved and taken relative to
        the repository root; a file outside it, or matching no glob, gets the default class
        (a copy of `base/relabel/customer.yaml` elsewhere is not the in-region list)."""
        root = (self.root or Path.cwd()).resolve()
        try:
            rel = Path(path).resolve().relative_to(root).as_posix()
        except (ValueError, OSError):
            return self.files_default
        for pattern in self.files_external:
            if _glob(rel, pattern):
                return EXTERNAL
        for pattern in self.files_in_region:
            if _glob(rel, pattern):
                return IN_REGION
        return self.files_default

    @cached_property
    def fingerprint(self) -> str:
        """Content hash: proof results cached per (policy, pipeline) stay valid while this holds."""
        blob = json.dumps([self.forbidden_patterns, self.derived_forbidden, self.hashed_forbidden,
                           self.job_allow, self.require_job], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def plain_url(url: str) -> bool:
    """An http(s) URL that names its host plainly: no userinfo (`user@host` sends to `host`), no
    query or fragment (a pattern's tail could match inside them), nothing a pattern could misread.
    Only such a URL can be in-region; anything else goes by the default (external)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and "@" not in parts.netloc
            and not parts.query and not parts.fragment and "?" not in url and "#" not in url
            and not any(c.isspace() or c == "\\" for c in url) and (port is None or 0 < port < 65536))


def _glob(path: str, pattern: str) -> bool:
    """A repository-relative path against a repository-relative glob, segment by segment
    (`*` never crosses a `/`, and the whole path must match: no suffix matching)."""
    parts, globs = path.split("/"), pattern.strip("/").split("/")
    return len(parts) == len(globs) and all(fnmatch.fnmatchcase(p, g) for p, g in zip(parts, globs))


def _ref(name: str, node: Any, key: Any = None) -> SourceRef:
    line, col = yamlio.position(node, key)
    return SourceRef(name, line, col)


def _check_pattern(pattern: str, name: str, node: Any, key: Any) -> InputError | None:
    try:
        anchored(pattern)
    except Exception as exc:  # re2.error, ValueError
        return InputError(f"invalid RE2 pattern {pattern!r}: {exc}", _ref(name, node, key))
    return None


def from_node(doc: Any, name: str) -> Policy:
    """Validate a parsed policy document (ruamel node) and build the Policy."""
    errors = schema.validate(doc, "policy", name)
    if errors:
        raise InputErrors(errors) if len(errors) > 1 else errors[0]
    forbidden: list[ForbiddenLabel] = []
    for i, item in enumerate(doc["forbidden_labels"]):
        pattern = item if isinstance(item, str) else item["pattern"]
        reason = "" if isinstance(item, str) else str(item.get("reason", ""))
        err = _check_pattern(str(pattern), name, doc["forbidden_labels"], i)
        if err:
            errors.append(err)
        forbidden.append(ForbiddenLabel(str(pattern), reason, _ref(name, doc["forbidden_labels"], i)))
    destinations = []
    for i, item in enumerate(doc.get("destinations", [])):
        err = _check_pattern(str(item["url"]), name, item, "url")
        if err:
            errors.append(err)
        destinations.append(Destination(str(item["name"]), str(item["class"]), str(item["url"]),
                                         _ref(name, doc["destinations"], i)))
    if errors:
        raise InputErrors(errors) if len(errors) > 1 else errors[0]
    derived = doc.get("derived_values") or {}
    jobs = doc["external_jobs"]
    files = doc.get("relabel_files") or {}
    return Policy(
        forbidden=forbidden,
        derived_forbidden=bool(derived.get("forbidden", True)),
        hashed_forbidden=bool(derived.get("hashed_values_forbidden", True)),
        job_allow=tuple(str(j) for j in jobs["allow"]),
        require_job=bool(jobs.get("require_job", True)),
        destinations=destinations,
        default_destination=str(doc.get("default_destination", EXTERNAL)),
        files_default=str(files.get("default", EXTERNAL)),
        files_in_region=tuple(str(p) for p in files.get("in_region", [])),
        files_external=tuple(str(p) for p in files.get("external", [])),
        source=name,
    )


def load_policy(path: Path, name: str | None = None) -> Policy:
    """Load and validate a policy file; errors are InputError with file:line:col. Its file
    globs are relative to the repository root: the parent of `policies/` (else its directory)."""
    name = name or str(path)
    policy = from_node(yamlio.load_file(path, name), name)
    here = Path(path).resolve().parent
    policy.root = here.parent if here.name == "policies" else here
    return policy


def load_text(text: str, name: str = "<policy>") -> Policy:
    return from_node(yamlio.load_text(text, name), name)


def find_default_policy(start: Path | None = None) -> Path | None:
    """policies/gdpr-labeldrop.yaml in the current directory or a parent, else next to the package."""
    start = (start or Path.cwd()).resolve()
    for base in (start, *start.parents):
        candidate = base / DEFAULT_POLICY
        if candidate.is_file():
            return candidate
    here = Path(__file__).resolve()
    for base in here.parents:
        candidate = base / DEFAULT_POLICY
        if candidate.is_file():
            return candidate
    return None
