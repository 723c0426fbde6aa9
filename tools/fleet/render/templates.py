"""Jinja2 for text targets (Alloy config, Fluent Bit config): strict, deterministic."""
from __future__ import annotations

import json
import re
import traceback
from functools import lru_cache
from pathlib import Path

import jinja2

from ..errors import InputError, SourceRef


def alloy_str(value: object) -> str:
    """An Alloy string literal (Go-style escapes; JSON's are a compatible subset)."""
    return json.dumps(str(value), ensure_ascii=False)


def label_name(value: str) -> str:
    """A Kubernetes label key as Prometheus SD exposes it (`app.kubernetes.io/name` → `app_kubernetes_io_name`)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", value)


_RE2_META = re.compile(r"([\\.+*?()|\[\]{}^$])")


def re_escape(value: object) -> str:
    """`value` as an RE2 literal (a label value such as `a.b` must not match `aXb`)."""
    return _RE2_META.sub(r"\\\1", str(value))


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
    env.filters["re_escape"] = re_escape
    return env


def render_template(root: Path, rel: str, **context: object) -> str:
    """Render the template at `root/rel`; a broken template is an input error at its line.

    Templates are inputs like any other file: a syntax error, an undefined name or a failing
    expression names the template file and line (exit code 2), never a traceback."""
    path = root / rel
    try:
        return _environment(str(path.parent)).get_template(path.name).render(**context)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"template syntax error: {exc.message}", SourceRef(rel, exc.lineno or 0)) from None
    except Exception as exc:  # noqa: BLE001 - any failure while rendering is the template's
        expected = (f"a name the template's context provides ({', '.join(sorted(context))}) "
                    "or their attributes") if isinstance(exc, jinja2.UndefinedError) else ""
        raise InputError(f"template failed: {type(exc).__name__}: {exc}",
                         SourceRef(rel, _template_line(exc, path)), expected=expected) from None


def _template_line(exc: BaseException, path: Path) -> int:
    """The template line being rendered when `exc` was raised (Jinja maps frames back to it)."""
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename) == path:
            line = frame.lineno or line
    return line
