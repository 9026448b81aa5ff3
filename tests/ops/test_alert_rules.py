"""The alert rules are valid, unit-tested alert by alert, loaded by the compose Prometheus, and
each has a runbook section.

``promtool`` (Debian package ``prometheus``, installed by ``.ci/run``) checks the rule files and
runs the unit tests in ``docker/prometheus/tests/``; this module adds what promtool cannot know:
that no alert is left without a firing case and a quiet case.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from deploy.helpers import COMPOSE, PROMETHEUS_YML, ROOT, require_binary

RULES_DIR = ROOT / "docker" / "prometheus" / "rules"
TESTS_DIR = ROOT / "docker" / "prometheus" / "tests"
RUNBOOK = ROOT / "docs" / "operations.md"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
TEST_FILES = sorted(TESTS_DIR.glob("*.test.yml"))


def _alerts() -> dict[str, dict]:
    alerts = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    assert rule["alert"] not in alerts, f"alert {rule['alert']} defined twice"
                    alerts[rule["alert"]] = rule
    return alerts


def _cases() -> list[tuple[str, bool]]:
    """(alert name, fires?) for every ``alert_rule_test`` entry of every unit-test file."""
    out = []
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                out.append((case["alertname"], bool(case.get("exp_alerts"))))
    return out


def _promtool(*args: str) -> subprocess.CompletedProcess:
    exe = require_binary("promtool", "prometheus")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_the_issue_alerts_exist() -> None:
    assert set(_alerts()) >= {
        "RecserveAvailabilityBurnFast",
        "RecserveAvailabilityBurnSlow",
        "RecserveLatencyBurnFast",
        "RecserveLatencyBurnSlow",
        "RecserveTargetDown",
        "RecserveNoModelLoaded",
        "RecserveModelRefused",
        "RecserveModelStale",
        "RecserveRedisBreakerOpen",
        "RecserveCacheHitRatioCollapsed",
        "RecserveModelVersionSkew",
    }


def test_rule_files_are_valid() -> None:
    result = _promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    assert TEST_FILES
    result = _promtool("test", "rules", *map(str, TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(TEST_FILES)


@pytest.mark.parametrize("alert", sorted(_alerts()))
def test_every_alert_has_a_firing_and_a_quiet_case(alert: str) -> None:
    outcomes = {fires for name, fires in _cases() if name == alert}
    assert outcomes == {True, False}, f"{alert}: firing case {True in outcomes}, quiet {False in outcomes}"


def test_unit_tests_name_only_existing_alerts() -> None:
    """A renamed alert would leave its tests asserting silence about nothing."""
    unknown = {name for name, _ in _cases()} - set(_alerts())
    assert not unknown


def test_unit_tests_cover_every_rule_file() -> None:
    covered = set()
    for path in TEST_FILES:
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            covered.add((path.parent / rule_file).resolve())
    assert covered == {p.resolve() for p in RULE_FILES}


@pytest.mark.parametrize("alert", sorted(_alerts()))
def test_alert_has_severity_and_a_runbook_section(alert: str) -> None:
    rule = _alerts()[alert]
    assert rule["labels"]["severity"] in ("page", "ticket")
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    path, _, anchor = annotations["runbook_url"].partition("#")
    assert (ROOT / path).resolve() == RUNBOOK.resolve()
    assert anchor == alert.lower()
    section = _runbook_sections().get(alert)
    assert section is not None, f"docs/operations.md has no '## {alert}' section"
    for part in ("Meaning", "Confirm", "Act"):
        assert re.search(rf"^\*\*{part}", section, re.M), f"{alert}: runbook section lacks **{part}**"


def _runbook_sections() -> dict[str, str]:
    text = RUNBOOK.read_text()
    parts = re.split(r"^## ", text, flags=re.M)
    return {p.split("\n", 1)[0].strip(): p for p in parts[1:]}


def test_prometheus_loads_the_rules_from_where_compose_mounts_them() -> None:
    config = yaml.safe_load(PROMETHEUS_YML.read_text())
    (pattern,) = config["rule_files"]
    assert sorted(PROMETHEUS_YML.parent.glob(pattern)) == RULE_FILES
    prometheus = yaml.safe_load(COMPOSE.read_text())["services"]["prometheus"]
    mounts = dict(v.rsplit(":", 2)[:2][::-1] for v in prometheus["volumes"] if v.startswith("./"))
    config_in_container = Path(next(k for k, v in mounts.items() if v.endswith("prometheus.yml")))
    rules_in_container = config_in_container.parent / Path(pattern).parent
    assert (ROOT / mounts[str(rules_in_container)]).resolve() == RULES_DIR.resolve()
