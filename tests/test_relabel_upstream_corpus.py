"""The relabel rule lists of VictoriaMetrics' own tests at v1.150.0, against the real vmagent v1.150.

tests/fixtures/relabel/upstream/vmagent_v1150_promrelabel.yaml holds every distinct rule list of
upstream's lib/promrelabel/*_test.go (data only). For each list, written as the YAML file vmagent
reads and loaded by the repo's own loader (flavor vmagent):

* the engine accepts it exactly when the real vmagent (`-dryRun`) does, so the engine refuses
  nothing this release runs (the issue: it used to refuse every list with `if`, `match`,
  `replace_all`, `keep_metrics`/`drop_metrics` or `labelmap_all`);
* the accepted lists run over series built from the names each list mentions, through the real
  vmagent and through the engine, with the same result.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from _binaries import require_binary
from differential import Case, compare, run_cases, vmagent_accepts
from fleet import yamlio
from fleet.errors import InputError
from fleet.relabel.loader import load_rules

pytestmark = pytest.mark.binary

CORPUS_FILE = Path(__file__).parent / "fixtures" / "relabel" / "upstream" / "vmagent_v1150_promrelabel.yaml"
CORPUS = yamlio.plain(yamlio.load_file(CORPUS_FILE))


@pytest.fixture(scope="module")
def binaries() -> dict:
    return {"vmagent_bin": require_binary("vmagent"),
            "victoria_metrics_bin": require_binary("victoria-metrics")}


def _rules_file(tmp: Path, index: int, rules: list) -> Path:
    path = tmp / f"list-{index}.yml"
    path.write_text(yaml.safe_dump(rules, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def _engine_accepts(path: Path) -> tuple[bool, str]:
    try:
        load_rules(path, flavor="vmagent")
    except InputError as exc:
        return False, exc.message
    return True, ""


def test_engine_accepts_every_list_vmagent_accepts(tmp_path, binaries):
    accepted, wrong = 0, []
    for index, entry in enumerate(CORPUS):
        path = _rules_file(tmp_path, index, entry["rules"])
        engine, why = _engine_accepts(path)
        real, words = vmagent_accepts_file(path, binaries["vmagent_bin"])
        accepted += real
        if engine != real:
            wrong.append(f"{entry['from']}: engine {'accepts' if engine else 'refuses (' + why + ')'}, "
                         f"vmagent {'accepts' if real else 'refuses: ' + words}\n  {entry['rules']}")
    assert accepted >= 100, accepted  # the corpus is mostly lists upstream runs
    assert not wrong, f"{len(wrong)} of {len(CORPUS)} lists:\n" + "\n".join(wrong)


def vmagent_accepts_file(path: Path, vmagent_bin: str) -> tuple[bool, str]:
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))
    return vmagent_accepts(rules, vmagent_bin=vmagent_bin)


def _names(rules: list) -> list[str]:
    """Label names a list mentions (sources, targets, graphite labels)."""
    names: list[str] = []
    for rule in rules:
        for name in list(rule.get("source_labels") or []) + [rule.get("target_label")] + list(rule.get("labels") or {}):
            if isinstance(name, str) and name and "$" not in name and name not in names:
                names.append(name)
    return names


def _series(rules: list) -> list[dict[str, str]]:
    """A few series over the names the list mentions: matching and missing values, a dotted
    (graphite) metric name, a value with a newline."""
    names = [n for n in _names(rules) if n != "__name__"]
    out = [{"__name__": "foo", **{n: "bar" for n in names}},
           {"__name__": "foo.bar.baz.aaa", **{n: f"{n}-1" for n in names[:2]}},
           {"__name__": "xxx", "job": "a\nb", **{n: "yyy" for n in names[1:]}}]
    for rule in rules:
        match = rule.get("match")
        if isinstance(match, str):
            out.append({"__name__": match.replace("*", "x"), "job": "j"})
    return out


def test_corpus_lists_agree_with_vmagent(tmp_path, binaries):
    cases = []
    for index, entry in enumerate(CORPUS):
        path = _rules_file(tmp_path, index, entry["rules"])
        if _engine_accepts(path)[0]:
            cases.append(Case(yamlio.plain(yamlio.load_file(path)), _series(entry["rules"])))
    assert len(cases) >= 100
    problems = compare(cases, run_cases(cases, **binaries))
    assert not problems, f"{len(problems)} of {len(cases)} disagree:\n\n" + "\n\n".join(
        p.render() for p in problems[:8])
