"""Cluster-agnostic content keys, so a check runs once per distinct *shape* of output.

Most rendered files differ between clusters only in the cluster ID. Replacing the ID with a
placeholder of the same length and the same character class keeps every line length and YAML
token kind, so checks whose verdict does not depend on the ID's letters (yamllint, kustomize
build) give the same result for every file with the same normalized text. Where the ID also
occurs inside other words, no normalization is done (the exact text is the key).
"""
from __future__ import annotations

import re
from functools import lru_cache

_ID_CHARS = "A-Za-z0-9_.-"


@lru_cache(maxsize=4096)
def _patterns(cluster_id: str) -> tuple[re.Pattern, str]:
    bounded = re.compile(rf"(?<![{_ID_CHARS}]){re.escape(cluster_id)}(?![A-Za-z0-9_-])")
    return bounded, "x" * len(cluster_id)


def normalize(text: str, cluster_id: str | None) -> str:
    """`text` with every standalone occurrence of `cluster_id` replaced by a same-length placeholder;
    unchanged when the ID also appears inside a longer token (then sharing would be unsound)."""
    if not cluster_id:
        return text
    bounded, placeholder = _patterns(cluster_id)
    total = text.count(cluster_id)
    if total == 0:
        return text
    replaced, n = bounded.subn(placeholder, text)
    return replaced if n == total else text


def cluster_of(rel: str) -> str | None:
    """The cluster ID of a path like rendered/clusters/<id>/..., else None."""
    parts = rel.split("/")
    if len(parts) > 3 and parts[0] == "rendered" and parts[1] == "clusters":
        return parts[2]
    return None
