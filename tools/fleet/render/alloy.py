"""Render a cluster's config.alloy (platform path) from base/components/alloy/*.

Each relabel rule of base/relabel/platform.yaml (plus the cluster's extra platform rules)
becomes a `rule { … }` block under a `// source: FILE:LINE` comment, so the GDPR proof can
report findings at the YAML line a reviewer edits.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import schema, yamlio
from ..errors import InputError, InputErrors
from ..model import Cluster, Fleet
from .templates import alloy_str, render_template

ALLOY_DIR = Path("base/components/alloy")
# The ConfigMap this repo generates for Alloy (kustomize configMapGenerator in the telemetry
# stage): its name and the one key, the rendered file. The chart must load exactly this
# (alloy.configMap.create false, name, key); lint's required-values check compares against these.
CONFIGMAP_NAME = "alloy-config"
CONFIG_FILE = "config.alloy"
RULE_KEYS = ("source_labels", "separator", "regex", "modulus", "target_label", "replacement", "action")


def _alloy_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(alloy_str(v) for v in value) + "]"
    return alloy_str(value)


def rule_attrs(rule: dict, where: str) -> list[tuple[str, str]]:
    """Alloy attributes of one rule; its keys are Prometheus' own (Alloy uses the same names)."""
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise InputError(f"unknown relabel field(s) {unknown}", None, expected=f"one of {list(RULE_KEYS)} ({where})")
    return [(k, _alloy_value(rule[k])) for k in RULE_KEYS if k in rule]


def platform_jobs(root: Path) -> list[dict]:
    """The platform scrape jobs, validated (platform-jobs.schema.json): their strings are pasted
    into config.alloy, so a stray newline or quote must be an input error, not a new statement."""
    name = (ALLOY_DIR / "platform-jobs.yaml").as_posix()
    ix = yamlio.load_indexed_file(root / ALLOY_DIR / "platform-jobs.yaml", name)
    problems = schema.validate(ix, "platform-jobs", name)
    if problems:
        raise InputErrors(problems)
    return ix.data


def render_config(fleet: Fleet, cluster: Cluster, header: str, jobs: list[dict]) -> str:
    rules = [{"source": r.source, "attrs": rule_attrs(r.rule, str(r.source))} for r in cluster.platform_relabel]
    return render_template(
        fleet.root, (ALLOY_DIR / "config.alloy.j2").as_posix(),
        header=header, cluster=cluster, jobs=jobs, rules=rules,
        remote_write_url=fleet.settings["platformMonitoring"]["remoteWriteUrl"],
    )
