"""yamllint over every input YAML file and every rendered YAML file (repo's .yamllint.yaml)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from yamllint import linter
from yamllint.config import YamlLintConfig

from .. import yamlio
from ..cache import ResultCache, digest
from ..errors import Finding, Severity, SourceRef
from ..normalize import normalized_digest
from . import CheckContext

NAME = "yamllint"
DESCRIPTION = "yamllint on inputs and rendered output"
ORDER = 10
SCOPE = "file"
READS = (".yamllint.yaml",)

INPUT_DIRS = ("base", "overlays", "regions", "clusters", "policies", "tests/rules", "tests/relabel")


def _config(root: Path) -> tuple[YamlLintConfig, str]:
    path = root / ".yamllint.yaml"
    text = yamlio.read_text(path, ".yamllint.yaml") if path.exists() else "extends: default"
    yamlio.check_structure(text, ".yamllint.yaml")  # yamllint loads its config with PyYAML itself
    return YamlLintConfig(text), text


def yaml_files(root: Path) -> list[Path]:
    """Every .yaml/.yml file under the input folders and rendered/ (os.walk: pathlib's rglob
    costs seconds on a 1,000-cluster tree)."""
    found = {str(root / "base/fleet.yaml")} if (root / "base/fleet.yaml").exists() else set()
    for folder in INPUT_DIRS + ("rendered",):
        for dirpath, _dirs, names in os.walk(root / folder):
            for name in names:
                if name.endswith((".yaml", ".yml")):
                    full = os.path.join(dirpath, name)
                    if os.path.isfile(full):
                        found.add(full)
    return [Path(p) for p in sorted(found)]


def is_target(rel: str) -> bool:
    """Whether yaml_files() would list the repo path `rel` (when it exists)."""
    return rel.endswith((".yaml", ".yml")) and any(rel.startswith(f"{d}/") for d in INPUT_DIRS + ("rendered",))


def lint_text(text: str, conf: YamlLintConfig, name: str) -> list[list]:
    return [[p.line, p.column, p.level, p.rule or "syntax", p.desc] for p in linter.run(text, conf, name)]


def check(ctx: CheckContext) -> Iterable[Finding]:
    conf, conf_text = _config(ctx.root)
    cache = ResultCache(ctx.root, "yamllint")
    paths = yaml_files(ctx.root) if ctx.files is None else \
        [ctx.root / rel for rel in sorted(ctx.files) if is_target(rel) and (ctx.root / rel).is_file()]
    prefix = len(str(ctx.root)) + 1
    for path in paths:
        rel = str(path)[prefix:].replace(os.sep, "/")
        # Files that differ only by their cluster's ID share one lint (same lines, same tokens):
        # rendered/clusters/<id>/... and the inputs clusters/<id>/... alike.
        rules = ",".join(sorted(r.ID for r in conf.enabled_rules(rel)))  # per-path `ignore:` settings
        key = digest(conf_text, rules, normalized_digest(ctx.cache, ctx.root, rel))
        problems = cache.get_or_compute(key, lambda: lint_text(yamlio.read_text(path, rel), conf, rel))
        for line, col, level, rule, desc in problems:
            severity = Severity.ERROR if level == "error" else Severity.WARNING
            yield Finding(NAME, severity, SourceRef(rel, line, col), f"{desc} ({rule})")
    cache.save()
