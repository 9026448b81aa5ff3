"""The feedback alert: valid for promtool, unit-tested firing and quiet, with a runbook section."""

from __future__ import annotations

import re
import subprocess

import yaml

from deploy.helpers import ROOT, require_binary

RULES = ROOT / "docker" / "prometheus" / "rules" / "feedback.yml"
TESTS = ROOT / "docker" / "prometheus" / "tests" / "feedback.test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"


def _promtool(*args: str) -> subprocess.CompletedProcess:
    exe = require_binary("promtool", "prometheus")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    check = _promtool("check", "rules", str(RULES))
    assert check.returncode == 0, check.stdout + check.stderr
    test = _promtool("test", "rules", str(TESTS))
    assert test.returncode == 0 and "SUCCESS" in test.stdout, test.stdout + test.stderr


def test_the_alert_fires_and_stays_quiet_in_the_unit_tests() -> None:
    outcomes = {
        bool(case.get("exp_alerts"))
        for t in yaml.safe_load(TESTS.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
        if case["alertname"] == "RecserveEventIngestionFailing"
    }
    assert outcomes == {True, False}


def test_the_runbook_has_the_alerts_section() -> None:
    (rule,) = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
    assert (ROOT / path).resolve() == RUNBOOK.resolve() and anchor == rule["alert"].lower()
    section = RUNBOOK.read_text().split(f"## {rule['alert']}\n", 1)[1].split("\n## ", 1)[0]
    for part in ("Meaning", "Confirm", "Act"):
        assert re.search(rf"^\*\*{part}", section, re.M), part
    # every metric the alert reads is one the service exports
    from service.metrics import Metrics

    exported = {m.name for m in Metrics().registry.collect()}
    for name in re.findall(r"(recserve_[a-z_]+)\{", rule["expr"]):
        assert name.removesuffix("_total") in exported, name
