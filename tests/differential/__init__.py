"""Differential harness: the real vmagent (and victoria-metrics) as an oracle for the engine.

Reusable entry points (import as `from differential import run_vmagent`, tests/ is on sys.path):

* `run_vmagent(rule_lists, series)` — push series through each rule list with the real
  vmagent (pinned, tools/upstream.lock); per rule list, the label sets the remote store received.
* `run_cases(cases)` / `engine_case(i, case)` / `compare(cases, actual)` — batched runs of
  many (rules, series) cases and the engine's prediction for each.
* `shrink(case)` — minimise a disagreeing case against the real binary.
"""
from .vmagent import (  # noqa: F401
    CASE_LABEL, OUT_LABEL, Case, Disagreement, compare, engine_case, finalize, render_case,
    rules_yaml, run_cases, run_vmagent, shrink, vmagent_accepts, wrapped_rules,
)
