"""Replay relabel rules through the real vmagent (the pinned build, tools/upstream.lock) and
compare with the engine.

How one run works: a fresh single-node VictoriaMetrics, and one vmagent with one
`-remoteWrite.url` per *case* (a case = a rule list + the series to push through it), each URL
with its own `-remoteWrite.urlRelabelConfig`. Every input series is pushed once to vmagent's
`/api/v1/import` with a marker label `zz_case=<i>`; URL i's rule file is

    - {action: keep, source_labels: [zz_case], regex: "<i>"}   # only its own case
    - {action: labeldrop, regex: zz_case}                      # ... without the marker
    <the case's rules>
    - {target_label: zz_out, replacement: "<i>"}               # tag what survived

so ~100s of cases share one vmagent process. Afterwards vmagent's finalisation (labels
starting with `__` other than `__name__` are deleted after remote-write relabeling) runs, the
store receives the series, and `/api/v1/export?match[]={zz_out=~".+"}` reads them back — with
or without `__name__`. The engine side applies exactly the same wrapped rule list
(`wrapped_rules`) with flavor="vmagent", then the same finalisation, so markers are modelled,
not assumed away. An output that is left with no label but `zz_out` counts as dropped (real
vmagent drops a series whose labels are all gone).
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fleet import upstream
from fleet.relabel.engine import apply, rule_from_mapping

from . import servers

CASE_LABEL = "zz_case"
OUT_LABEL = "zz_out"
SETTLE_TIMEOUT = 60.0

Series = dict[str, str]
RuleList = list[dict]


@dataclass
class Case:
    """One rule list and the series pushed through it."""

    rules: RuleList
    series: list[Series]


@dataclass
class Disagreement:
    case_index: int
    case: Case
    expected: list[Series]
    actual: list[Series]

    def render(self) -> str:
        return render_case(self.case, self.expected, self.actual)


def wrapped_rules(index: int | str, rules: Sequence[Mapping]) -> RuleList:
    """The rule list URL `index` really runs: case filter + the case's rules + output marker."""
    return ([{"action": "keep", "source_labels": [CASE_LABEL], "regex": str(index)},
             {"action": "labeldrop", "regex": CASE_LABEL}]
            + [dict(rule) for rule in rules]
            + [{"target_label": OUT_LABEL, "replacement": str(index)}])


def rules_yaml(rules: Sequence[Mapping]) -> str:
    """A rule file vmagent reads: one JSON flow mapping per item (JSON is valid YAML)."""
    return "".join("- " + json.dumps(rule, ensure_ascii=False) + "\n" for rule in rules)


def finalize(labels: Mapping[str, str]) -> Series:
    """vmagent's FinalizeLabels after remote-write relabeling: drop `__*` except `__name__`."""
    return {k: v for k, v in labels.items() if not (k.startswith("__") and k != "__name__")}


def _canonical(outputs: list[Series]) -> list[Series]:
    unique = {tuple(sorted(o.items())) for o in outputs if o}
    return [dict(items) for items in sorted(unique)]


def engine_case(index: int | str, case: Case) -> list[Series]:
    """What the engine predicts the store holds for `case` (markers stripped, sorted, deduped)."""
    rules = [rule_from_mapping(r, flavor="vmagent") for r in wrapped_rules(index, case.rules)]
    outputs = []
    for series in case.series:
        out = apply(rules, {**series, CASE_LABEL: str(index)}, flavor="vmagent")
        if out is None:
            continue
        out = finalize(out)
        out.pop(OUT_LABEL, None)
        outputs.append(out)
    return _canonical(outputs)


def run_cases(cases: Sequence[Case], *, vmagent_bin: str | None = None,
              victoria_metrics_bin: str | None = None, batch_size: int = 250,
              workdir: Path | None = None) -> list[list[Series]]:
    """Run every case through real vmagent; per case, the label sets the store received.

    Cases run `batch_size` per vmagent process against one VictoriaMetrics. Each result is
    sorted, deduplicated and stripped of the markers; a dropped series simply is not there.
    """
    vmagent_bin = vmagent_bin or upstream.binary("vmagent")
    victoria_metrics_bin = victoria_metrics_bin or upstream.binary("victoria-metrics")
    results: list[list[Series]] = []
    with servers.tempdir("relabel-diff-") as tmp:
        base = Path(workdir or tmp)
        with servers.victoria_metrics(victoria_metrics_bin, base) as store:
            for start in range(0, len(cases), batch_size):
                batch = list(cases[start:start + batch_size])
                results.extend(_run_batch(batch, start, store, vmagent_bin, base / f"batch-{start}"))
    return results


def run_vmagent(rule_lists: Sequence[Sequence[Mapping]], series: Sequence[Mapping[str, str]],
                **kwargs) -> list[list[Series]]:
    """Push every series through each rule list with the real vmagent.

    `rule_lists`: relabel_config mappings as written in a `-remoteWrite.urlRelabelConfig` file
    (e.g. `[{"action": "labeldrop", "regex": "project_id"}]`); `series`: label sets, normally
    with `__name__` (series without it work too). Returns, per rule list, the distinct label
    sets the remote store received, each a dict sorted by name, the list sorted — empty when
    every series was dropped. vmagent's finalisation applies: labels starting with `__`
    (except `__name__`) never reach the store. Needs the pinned vmagent and
    victoria-metrics (`make setup`); one call starts one store and one vmagent per 250 rule lists
    (about 2 s). Compare with `engine_case(i, Case(rules, series))` for the engine's view.
    Example (GDPR witness replay)::

        out = run_vmagent([alloy_rules], [{"__name__": "kube_pod_labels",
                                          "label_starform_io_project_id": "p1"}])
        assert all("label_starform_io_project_id" not in s for s in out[0])
    """
    cases = [Case([dict(r) for r in rules], [dict(s) for s in series]) for rules in rule_lists]
    return run_cases(cases, **kwargs)


def _run_batch(batch: list[Case], offset: int, store: servers.Server, vmagent_bin: str,
               workdir: Path) -> list[list[Series]]:
    workdir.mkdir(parents=True)
    remote_write = []
    rows = []
    now_ms = int(time.time() * 1000)
    for i, case in enumerate(batch):
        index = offset + i
        config = workdir / f"case-{index}.yml"
        config.write_text(rules_yaml(wrapped_rules(index, case.rules)), encoding="utf-8")
        remote_write.append((store.url + "/api/v1/write", config))
        for j, series in enumerate(case.series):
            rows.append({"metric": {**series, CASE_LABEL: str(index)}, "values": [1],
                         "timestamps": [now_ms - j]})
    markers = {str(offset + i) for i in range(len(batch))}
    with servers.vmagent(vmagent_bin, workdir, remote_write) as agent:
        if rows:
            servers.import_json_lines(agent, rows)
        exported = _settle(agent, store, markers, len(rows))
    by_case: dict[str, list[Series]] = {}
    for item in exported:
        metric = dict(item["metric"])
        by_case.setdefault(metric.pop(OUT_LABEL), []).append(metric)
    return [_canonical(by_case.get(str(offset + i), [])) for i in range(len(batch))]


def _settle(agent: servers.Server, store: servers.Server, markers: set[str], sent: int) -> list[dict]:
    """Export this batch once the store holds every sample vmagent forwarded after relabeling.

    Every input row becomes at most one sample and samples of one case never share a
    timestamp, so "samples exported == rows pushed after relabel" means the batch is complete.
    """
    deadline = time.monotonic() + SETTLE_TIMEOUT
    samples = pushed = -1.0
    while time.monotonic() < deadline:
        taken = servers.metric_sum(agent.url, "vmagent_rows_inserted_total", type="vmimport")
        pushed = servers.metric_sum(agent.url, "vmagent_remotewrite_rows_pushed_after_relabel_total")
        if taken >= sent:
            servers.http("GET", store.url + "/internal/force_flush")
            items = [item for item in servers.export(store, '{%s=~".+"}' % OUT_LABEL)
                     if item["metric"].get(OUT_LABEL) in markers]
            samples = float(sum(len(item["values"]) for item in items))
            if samples == pushed:
                return items
        time.sleep(0.2)
    raise TimeoutError(f"store holds {samples} samples of {pushed} pushed after {SETTLE_TIMEOUT}s:\n"
                       f"{agent.log_tail()}")


def compare(cases: Sequence[Case], actual: Sequence[list[Series]]) -> list[Disagreement]:
    """Cases where the engine's prediction differs from what the store received."""
    out = []
    for index, (case, got) in enumerate(zip(cases, actual)):
        want = engine_case(index, case)
        if want != got:
            out.append(Disagreement(index, case, want, got))
    return out


def render_case(case: Case, expected: list[Series], actual: list[Series]) -> str:
    lines = ["rules (vmagent -remoteWrite.urlRelabelConfig):"]
    lines += ["  - " + json.dumps(rule, ensure_ascii=False) for rule in case.rules] or ["  []"]
    lines.append("input series:")
    lines += ["  " + json.dumps(s, ensure_ascii=False) for s in case.series]
    lines.append("engine (flavor=vmagent): " + json.dumps(expected, ensure_ascii=False))
    lines.append(f"real vmagent {upstream.version('vmagent')}:  " + json.dumps(actual, ensure_ascii=False))
    return "\n".join(lines)


def shrink(case: Case, rounds: int = 12, **kwargs) -> tuple[Case, list[Series], list[Series]]:
    """Greedy, batched delta-debugging of a disagreeing case against the real vmagent.

    Each round runs every one-step-smaller variant (one rule, one series or one label fewer)
    in a single vmagent process and keeps the first that still disagrees.
    """
    current = case
    for _ in range(rounds):
        variants = _smaller(current)
        if not variants:
            break
        actual = run_cases(variants, **kwargs)
        for variant, got in zip(variants, actual):
            if engine_case(0, variant) != got:  # indexes differ, markers are stripped: fine
                current = variant
                break
        else:
            break
    got = run_cases([current], **kwargs)[0]
    return current, engine_case(0, current), got


def _smaller(case: Case, flavor: str = "vmagent") -> list[Case]:
    """One-step-smaller variants of `case` whose rules `flavor` still accepts."""
    variants = []
    for k in range(len(case.rules)):
        variants.append(Case(case.rules[:k] + case.rules[k + 1:], case.series))
    for k in range(len(case.series)):
        if len(case.series) > 1:
            variants.append(Case(case.rules, case.series[:k] + case.series[k + 1:]))
    for k, series in enumerate(case.series):
        for name in series:
            smaller = {n: v for n, v in series.items() if n != name}
            variants.append(Case(case.rules, case.series[:k] + [smaller] + case.series[k + 1:]))
    valid = []
    for variant in variants:
        try:
            [rule_from_mapping(r, flavor=flavor) for r in variant.rules]
        except Exception:
            continue
        valid.append(variant)
    return valid


def vmagent_accepts(rules: Sequence[Mapping], *, vmagent_bin: str | None = None) -> tuple[bool, str]:
    """Whether the real vmagent loads `rules` as a relabel config (`-dryRun`), and its words."""
    import subprocess
    import tempfile

    vmagent_bin = vmagent_bin or upstream.binary("vmagent")
    with tempfile.TemporaryDirectory(prefix="relabel-accept-") as tmp:
        path = Path(tmp) / "rules.yml"
        path.write_text(rules_yaml(rules), encoding="utf-8")
        proc = subprocess.run([vmagent_bin, "-dryRun", f"-remoteWrite.relabelConfig={path}",
                               "-remoteWrite.url=http://127.0.0.1:1", "-loggerLevel=ERROR"],
                              capture_output=True, text=True, timeout=30)
    return proc.returncode == 0, (proc.stdout + proc.stderr).strip()[-400:]
