"""The scrape's `exported_` renaming, which the GDPR proof models (`proof.scraped_series`),
against what real Prometheus (the pinned build, tools/upstream.lock) stores.

The exporter serves each series below; Prometheus scrapes it as a static target carrying the
label `project_id: platform` (static_configs `labels`), once with honor_labels false and once
with true, and remote-writes to VictoriaMetrics (rules: none, or the GDPR labeldrop). The
store must hold exactly what `scraped_series(...)` followed by the engine predicts, and the
headline series is pinned literally too, so a wrong model and a wrong harness both fail.
"""
from __future__ import annotations

import pytest

from _binaries import require_binary
from differential import prometheus as prom
from differential.vmagent import Case

pytestmark = pytest.mark.binary

TARGET_LABELS = {"project_id": "platform"}
HEADLINE = {"__name__": "m", "project_id": "acme", "exported_project_id": "e"}
SERIES = [
    HEADLINE,
    {"__name__": "m", "project_id": "acme"},
    # an exposed label with an empty value does not block a rename (Prometheus 3: Get(name) == "")
    {"__name__": "m", "project_id": "acme", "exported_project_id": ""},
    {"__name__": "m", "project_id": "", "exported_project_id": "e"},
    {"__name__": "m", "project_id": "acme", "exported_project_id": "e", "exported_exported_project_id": "f"},
    # several conflicts: the shorter name is renamed first, renamed names are taken
    {"__name__": "m", "job": "shuttle", "project_id": "acme", "exported_job": "x"},
    {"__name__": "m", "instance": "i", "job": "", "exported_instance": ""},
]
GDPR_DROP = [{"action": "labeldrop", "regex": "project_id|service_id|workspace_id|label_starform_io_.+"}]
CASES = [Case([], [s]) for s in SERIES] + [Case(GDPR_DROP, [s]) for s in SERIES]


@pytest.fixture(scope="module")
def binaries() -> dict:
    return {"prometheus_bin": require_binary("prometheus"),
            "victoria_metrics_bin": require_binary("victoria-metrics")}


@pytest.mark.parametrize("honor_labels", [False, True], ids=["honor_labels=false", "honor_labels=true"])
def test_scraped_series_matches_what_prometheus_stores(binaries, honor_labels):
    scrape = prom.Scrape(honor_labels=honor_labels, labels=TARGET_LABELS)
    expected, actual = prom.run_cases(CASES, scrape=scrape, **binaries)
    bad = [prom.render(c, e, a) for c, e, a in zip(CASES, expected, actual) if e != a]
    assert not bad, "\n\n".join(bad)
    (stored,) = actual[0]
    instance = stored["instance"]
    if honor_labels:  # the exposed value wins, nothing is renamed
        assert stored == {**HEADLINE, "job": prom.JOB, "instance": instance}
    else:  # the target's wins; `exported_project_id` is taken, so the id goes one further
        assert stored == {"__name__": "m", "project_id": "platform", "exported_project_id": "e",
                          "exported_exported_project_id": "acme", "job": prom.JOB, "instance": instance}
    # after the GDPR labeldrop the customer id survives exactly when it was renamed
    (dropped,) = actual[len(SERIES)]
    assert ("acme" in dropped.values()) is (not honor_labels), dropped


def test_write_rules_see_the_external_labels(binaries):
    """Prometheus' queue adds external labels (where absent) before write_relabel_configs, as the
    proof's Pipeline.write_stages models: a write rule can read them, and can drop a label the
    external labels would have supplied."""
    external = {"zz_ext": "e1", "job": "ext-job"}
    cases = [Case([{"source_labels": ["zz_ext"], "target_label": "zz_seen"}], [{"__name__": "m", "a": "1"}]),
             Case([{"action": "labeldrop", "regex": "job"}], [{"__name__": "m", "a": "2"}])]
    expected, actual = prom.run_cases(cases, scrape=prom.Scrape(external_labels=external), **binaries)
    assert actual == expected, (expected, actual)
    (seen,), (dropped,) = actual
    assert seen["zz_seen"] == "e1" and seen["job"] == prom.JOB      # the scrape's job wins over the external one
    assert "job" not in dropped and dropped["zz_ext"] == "e1"
