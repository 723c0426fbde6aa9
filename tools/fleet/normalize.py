"""Cluster-agnostic content keys, so a check runs once per distinct *shape* of output.

Most rendered files differ between clusters only in the cluster ID. Replacing the ID with a
placeholder of the same length and the same character class keeps every line length and YAML
token kind, so checks whose verdict does not depend on the ID's letters (yamllint, kustomize
build) give the same result for every file with the same normalized text. Where the ID also
occurs inside other words, or is itself a YAML scalar that is not a plain string (`no`, `on`,
`123`, `1e3`: yamllint's truthy rule and kustomize's types see those), no normalization is done
(the exact text is the key).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import yaml

from . import yamlio
from .cache import digest

_ID_CHARS = "A-Za-z0-9_.-"
_BEFORE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_AFTER = _BEFORE - {"."}
#: Starts like a number in some YAML version (1.1 sexagesimals and underscores, 1.2 0o/0x).
_NUMBERISH = re.compile(r"[-+.0-9]")
#: YAML 1.1 booleans, as yamllint's truthy rule lists them (PyYAML itself reads `y`/`n` as strings).
_TRUTHY = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off"})


@lru_cache(maxsize=4096)
def _plain_string(cluster_id: str) -> bool:
    """Whether `cluster_id`, written bare, is a plain string in YAML 1.1 and 1.2 (as the
    placeholder is): only then are the two interchangeable for a linter or a parser."""
    if _NUMBERISH.match(cluster_id) or cluster_id.lower() in _TRUTHY:
        return False
    # The tag PyYAML's (YAML 1.1) implicit resolvers give the bare scalar: only `str` is plain.
    return yaml.resolver.Resolver().resolve(yaml.ScalarNode, cluster_id, (True, False)) == "tag:yaml.org,2002:str"


def normalize(text: str, cluster_id: str | None) -> str:
    """`text` with every standalone occurrence of `cluster_id` replaced by a same-length placeholder;
    unchanged when the ID also appears inside a longer token (then sharing would be unsound).

    Standalone: not preceded by [A-Za-z0-9_.-] nor followed by [A-Za-z0-9_-] (a following dot is
    a domain, `c1.starform.cloud`). Done with str.split, not a regex: it runs on every rendered file."""
    if not cluster_id or cluster_id not in text or not _plain_string(cluster_id):
        return text
    parts = text.split(cluster_id)
    last = len(parts) - 1
    for i in range(last):   # occurrence i sits between parts[i] and parts[i + 1]
        before = parts[i][-1:] or (cluster_id[-1] if i > 0 else "")
        after = parts[i + 1][:1] or (cluster_id[0] if i + 1 < last else "")
        if before in _BEFORE and before or after in _AFTER and after:
            return text
    return ("x" * len(cluster_id)).join(parts)


def cluster_of(rel: str) -> str | None:
    """The cluster ID of a path like rendered/clusters/<id>/..., else None."""
    parts = rel.split("/")
    if len(parts) > 3 and parts[0] == "rendered" and parts[1] == "clusters":
        return parts[2]
    return None


def owner_of(rel: str) -> str | None:
    """The cluster ID of a rendered or input cluster file: rendered/clusters/<id>/... or clusters/<id>/..."""
    parts = rel.split("/")
    if len(parts) > 2 and parts[0] == "clusters":
        return parts[1]
    return cluster_of(rel)


#: ctx.cache key of normalized_digest's memo: repo path → digest.
DIGESTS = "normalized-digests"


def normalized_digest(cache: dict, root: Path, rel: str) -> str:
    """The digest of the file `rel`'s text normalized for its cluster (owner_of), read once per
    lint run and process: yamllint and kustomize-build key on it, and reading and hashing the
    ~90 MB of a 1,000-cluster rendered/ twice was a second of a cold lint."""
    memo = cache.setdefault(DIGESTS, {})
    found = memo.get(rel)
    if found is None:
        found = memo[rel] = shape_digest(yamlio.read_text(root / rel, rel), rel)
    return found


def shape_digest(text: str, rel: str) -> str:
    """The digest of `text`, the file `rel`, normalized for its cluster (owner_of): files that
    differ only by their cluster's ID share it."""
    return digest(normalize(text, owner_of(rel)))
