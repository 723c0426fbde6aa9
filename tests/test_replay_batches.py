"""vmalert replays rules in batches (vmengine.replay_batches) with what one run per rule, in order,
gives: checked on the batching's order rules, and on the real VictoriaMetrics + vmalert."""
from __future__ import annotations

from pathlib import Path

import pytest

from _binaries import require_binary
from fleet.rules import vmengine, vmseries
from fleet.rules.loader import Group, load_rule_file

REPO = Path(__file__).resolve().parents[1]

CHAINED = """groups:
  - name: first
    interval: 1m
    rules:
      - record: early:reads_later
        expr: sum(late:source) or vector(7)
      - record: a:sum
        expr: sum by (job) (m)
      - record: b:double
        expr: a:sum * 2
  - name: second
    interval: 1m
    rules:
      - record: c:plus_one
        expr: b:double + 1
      - record: independent:count
        expr: count(m)
      - record: late:source
        expr: sum(m) * 100
      - alert: Many
        expr: count(m) > 1
      - record: alerts:count
        expr: count(ALERTS) or vector(0)
"""
# A second file may reuse a group name (one vmalert rule file may not).
SECOND_FILE = """groups:
  - name: first
    interval: 1m
    rules:
      - record: unknown:reads
        expr: count({__name__=~"a:.*"}) or vector(0)
      - record: after:unknown
        expr: count(m)
"""


def _groups(tmp_path: Path) -> list[Group]:
    groups = []
    for name, text in (("chained.yaml", CHAINED), ("second.yaml", SECOND_FILE)):
        (tmp_path / name).write_text(text)
        groups += load_rule_file(tmp_path / name, tmp_path).groups
    return groups


def _where(runs: list[list[Group]]) -> dict[str, int]:
    return {rule.name: i for i, run in enumerate(runs) for group in run for rule in group.rules}


def test_each_rule_runs_once_and_reads_no_rule_of_its_own_run(tmp_path):
    groups = _groups(tmp_path)
    runs = vmengine.replay_batches(groups)
    names = sorted(r.name for run in runs for g in run for r in g.rules)
    assert names == sorted(r.name for g in groups for r in g.rules)
    assert len(runs) < len(names)
    for run in runs:
        written = {n for g in run for r in g.rules for n in vmengine._writes(r)}
        for group in run:
            for rule in group.rules:
                reads = vmengine._reads(rule)
                if reads is None:  # unknown reads: alone in its run
                    assert [r.name for g in run for r in g.rules] == [rule.name]
                else:
                    assert not (reads & written - vmengine._writes(rule)), rule.name


def test_the_order_one_run_per_rule_gives_is_kept(tmp_path):
    at = _where(vmengine.replay_batches(_groups(tmp_path)))
    assert at["a:sum"] < at["b:double"] < at["c:plus_one"]       # a chain sees its earlier links
    assert at["early:reads_later"] < at["late:source"]          # and never a later rule's series
    assert at["Many"] < at["alerts:count"]                      # an alert writes ALERTS
    assert at["unknown:reads"] > max(v for k, v in at.items() if k not in ("unknown:reads", "after:unknown"))
    assert at["after:unknown"] > at["unknown:reads"]            # unknown reads: a barrier both ways


def test_a_group_name_appears_once_per_run(tmp_path):
    for run in vmengine.replay_batches(_groups(tmp_path)):
        assert len({g.name for g in run}) == len(run)
        for group in run:
            assert group.settings == {"interval": "1m"}


def test_the_shipped_recording_rules_need_fewer_runs_than_rules():
    groups = [g for path in sorted((REPO / "base/rules/recording").glob("*.yaml"))
              for g in load_rule_file(path, REPO).groups]
    runs = vmengine.replay_batches(groups)
    assert len(runs) < sum(len(g.rules) for g in groups)


def _replayed(vm: str, vmalert: str, groups: list[Group], runs) -> dict[str, list]:
    """Every recorded series at every minute after a replay whose runs are `runs(groups)`."""
    start_ms = vmengine.BASE_SECONDS * 1000
    series = [vmseries.series_samples('m{job="a",i="1"}', "1+1x20", start_ms, 60_000),
              vmseries.series_samples('m{job="b",i="2"}', "5x20", start_ms, 60_000)]
    names = sorted({r.name for g in groups for r in g.rules if r.kind == "record"} | {"ALERTS"})
    out = {}
    original = vmengine.replay_batches
    vmengine.replay_batches = runs
    try:
        with vmengine.store(vm, []) as target:
            target.write(series)
            vmengine.Replay(vmalert).run(target, groups, vmengine.BASE_SECONDS - 60, vmengine.BASE_SECONDS + 1200)
            for name in names:
                out[name] = [sorted((sorted(labels.items()), value) for labels, value in
                                    target.instant(name, vmengine.BASE_SECONDS + t, 60)) for t in range(0, 1201, 60)]
    finally:
        vmengine.replay_batches = original
    return out


def _one_rule_per_run(groups: list[Group]) -> list[list[Group]]:
    return [[Group(g.name, g.settings, [r], g.source, g.file)] for g in groups for r in g.rules]


@pytest.mark.binary
def test_batched_runs_give_what_one_run_per_rule_gives_on_vmalert(tmp_path):
    vm, vmalert = require_binary("victoria-metrics"), require_binary("vmalert")
    groups = _groups(tmp_path)
    one_by_one = _replayed(vm, vmalert, groups, _one_rule_per_run)
    batched = _replayed(vm, vmalert, groups, vmengine.replay_batches)
    assert batched == one_by_one
    # the cases that order decides are really exercised: a chain, and a rule that reads a later one
    name = ("__name__", "c:plus_one")
    assert one_by_one["c:plus_one"][-1] == [([name, ("job", "a")], 43.0), ([name, ("job", "b")], 11.0)]
    assert one_by_one["early:reads_later"][-1] == [([("__name__", "early:reads_later")], 7.0)]
