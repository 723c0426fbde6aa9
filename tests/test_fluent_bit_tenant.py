"""Fluent Bit's tenant filter (luaScripts in base/components/fluent-bit/values.yaml), run by LuaJIT.

Fluent Bit embeds LuaJIT and calls `starform_tenant(tag, timestamp, record)` for every record
after the kubernetes filter; its return code decides: -1 drops the record, 2 keeps the new record
with the original timestamp. The script is taken from the values Flux applies, not from a copy.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from _binaries import require_binary

ROOT = Path(__file__).resolve().parents[1]
VALUES = ROOT / "base/components/fluent-bit/values.yaml"
IDS = {"starform.io/project-id": "p1", "starform.io/service-id": "s1", "starform.io/workspace-id": "w1"}


def _lua(value: object) -> str:
    """A Python value as a Lua literal (tables for dicts; what Fluent Bit hands the filter)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"[{_lua(k)}] = {_lua(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))  # JSON string escapes are valid Lua ones for this ASCII data


def run_filter(record: dict) -> tuple[int, dict]:
    """(return code, top-level string fields of the returned record) from the real script."""
    luajit = require_binary("luajit")
    values = yaml.safe_load(VALUES.read_text())
    filters = values["config"]["filters"]
    assert "script /fluent-bit/scripts/starform-tenant.lua" in filters and "call starform_tenant" in filters
    script = values["luaScripts"]["starform-tenant.lua"]
    driver = script + f"""
local code, ts, out = starform_tenant("kube.var.log.containers.x.log", 1700000000, {_lua(record)})
print(code)
local keys = {{}}
for k, v in pairs(out) do if type(v) == "string" then table.insert(keys, k) end end
table.sort(keys)
for _, k in ipairs(keys) do print(k .. "=" .. out[k]) end
"""
    done = subprocess.run([luajit, "-"], input=driver, capture_output=True, text=True, check=True)
    first, *rest = done.stdout.splitlines()
    return int(first), dict(line.split("=", 1) for line in rest)


def _record(labels: dict | None, namespace: str = "p-1", **fields: str) -> dict:
    k8s: dict = {"namespace_name": namespace, "pod_name": "web-0"}
    if labels is not None:
        k8s["labels"] = labels
    return {"log": "hello", **fields, "kubernetes": k8s}


def test_customer_record_carries_its_tenant_ids():
    code, fields = run_filter(_record({**IDS, "app": "web"}))
    assert code == 2
    assert fields == {"log": "hello", "project_id": "p1", "service_id": "s1", "workspace_id": "w1"}


def test_ids_logged_by_the_application_are_overwritten_by_the_pod_labels():
    code, fields = run_filter(_record(IDS, project_id="victim", workspace_id="other"))
    assert code == 2 and (fields["project_id"], fields["workspace_id"]) == ("p1", "w1")


@pytest.mark.parametrize("record", [
    _record({"app.kubernetes.io/name": "alloy"}, namespace="starform-alloy"),      # platform pod
    _record(None, namespace="kube-system"),                                        # no labels at all
    {"log": "no kubernetes metadata"},                                             # filter found no pod
    _record({k: v for k, v in IDS.items() if k != "starform.io/workspace-id"}),    # incomplete identity
    _record({**IDS, "starform.io/service-id": ""}),                                # empty label value
    _record(IDS) | {"kubernetes": "not-a-map"},
])
def test_records_of_anything_but_a_customer_pod_are_dropped(record):
    code, _ = run_filter(record)
    assert code == -1
