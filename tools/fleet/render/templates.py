"""Jinja2 for text targets (Alloy config, Fluent Bit config): strict, deterministic."""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

import jinja2


def alloy_str(value: object) -> str:
    """An Alloy string literal (Go-style escapes; JSON's are a compatible subset)."""
    return json.dumps(str(value), ensure_ascii=False)


def label_name(value: str) -> str:
    """A Kubernetes label key as Prometheus SD exposes it (`app.kubernetes.io/name` → `app_kubernetes_io_name`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", value)


@lru_cache(maxsize=None)
def _environment(folder: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["alloy_str"] = alloy_str
    env.filters["label_name"] = label_name
    return env


def render_template(path: Path, **context: object) -> str:
    return _environment(str(path.parent)).get_template(path.name).render(**context)
