"""Findings → text or JSON. Writers are interchangeable behind one function each."""
from __future__ import annotations

import json
from typing import Iterable, TextIO

from .errors import Finding


def write_text(findings: list[Finding], out: TextIO) -> None:
    for f in findings:
        hint = f" (hint: {f.hint})" if f.hint else ""
        out.write(f"{f.source}: {f.severity.value}: [{f.check}] {f.message}{hint}\n")


def write_json(findings: list[Finding], out: TextIO) -> None:
    payload = [{"check": f.check, "severity": f.severity.value, "file": f.source.file, "line": f.source.line,
                "col": f.source.col, "message": f.message, "hint": f.hint, "details": f.details}
               for f in findings]
    json.dump({"findings": payload}, out, indent=2, sort_keys=True, default=str)
    out.write("\n")


def write_github(findings: list[Finding], out: TextIO) -> None:
    """GitHub Actions workflow commands: annotations on the source line of the PR diff."""
    level = {"error": "error", "warning": "warning", "info": "notice"}
    for f in findings:
        msg = f.message.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        out.write(f"::{level[f.severity.value]} file={f.source.file},line={f.source.line or 1},"
                  f"col={f.source.col or 1},title={f.check}::{msg}\n")


WRITERS = {"text": write_text, "json": write_json, "github": write_github}


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    return sorted(set(findings), key=Finding.sort_key)
