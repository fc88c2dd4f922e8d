"""The chart's alerts and dashboard: every expression parses (promtool, built from the Go
module proxy at a pinned version), and every metric it names is one the operator exports
after a bot's lifecycle (so no alert watches a metric that does not exist)."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devenv.cluster import cluster
from devenv.operator_process import OperatorProcess
from devenv.zoomsim import SimAdmin, ZoomSim
from tests.support.chart import CHART, render
from tests.support.operator_fixtures import Bots, Kube, account_ready, zoom_account
from tests.support.scripted_bot import Scripted
from tests.support.specs import bot_spec

ENABLED = {"metrics": {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}}}
# Metrics Prometheus itself makes (not the operator's).
PROMETHEUS_OWN = {"up"}
KEYWORDS = {"or", "and", "unless", "bool", "offset"}


def rule_groups(tmp_path: Path) -> list[dict[str, Any]]:
    docs = render(tmp_path, ENABLED)
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    groups: list[dict[str, Any]] = rule["spec"]["groups"]
    return groups


def dashboard_exprs() -> list[str]:
    board = json.loads((CHART / "dashboards" / "meetingbot-operator.json").read_text())
    return [t["expr"] for panel in board["panels"] for t in panel["targets"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(cluster.Binaries.in_cache().promtool), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: what is left once strings, label matchers,
    ranges and grouping clauses are gone, and names followed by "(" (functions) are not."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    tokens = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", text)
    return {name for name, call in tokens if not call and name not in KEYWORDS}


def test_every_alert_and_dashboard_expression_parses(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": rule_groups(tmp_path)}))
    checked = promtool("check", "rules", str(rules))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 9 rules found" in checked.stdout
    # The dashboard's queries, as recording rules: promtool parses each one.
    recorded = [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(dashboard_exprs())]
    board = tmp_path / "dashboard-rules.yaml"
    board.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}))
    checked = promtool("check", "rules", str(board))
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_promtool_refuses_a_broken_expression(tmp_path: Path) -> None:
    """The check above can fail: a typo in an expression is refused."""
    broken = tmp_path / "broken.yaml"
    rule = {"alert": "Broken", "expr": "sum(rate(meetingbot_bots[5m]) > "}
    broken.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}))
    assert promtool("check", "rules", str(broken)).returncode != 0


async def test_alerts_and_dashboard_name_only_metrics_the_operator_exports(
    tmp_path: Path,
    kube: Kube,
    namespace: str,
    bots: Bots,
    sim: SimAdmin,
    zoomsim: ZoomSim,
    operator: OperatorProcess,
    scripted: Scripted,
) -> None:
    # A lifecycle: an account, a bot that joins (a ZAK minted, reports) and finishes.
    zoom = await zoom_account(kube, namespace, sim, zoomsim.url)
    await account_ready(kube, namespace)
    number = sim.create_meeting(zoom["id"])["number"]
    await bots.apply("watched", bot_spec(number))
    run = asyncio.create_task(scripted("watched").run())
    await bots.wait_phase("watched", "InMeeting", timeout=60)
    sim.end_meeting(number)
    await run
    await bots.wait_phase("watched", "Succeeded")
    text = httpx.get(operator.metrics_url, timeout=10).text
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    exprs = [r["expr"] for g in rule_groups(tmp_path) for r in g["rules"]] + dashboard_exprs()
    named = set().union(*(metric_names(e) for e in exprs)) - PROMETHEUS_OWN
    assert named, "no metric found in the expressions"
    missing = sorted(named - exported)
    assert not missing, f"named by alerts or the dashboard but not exported: {missing}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (reason) (increase(meetingbot_bots_finished_total{phase="Failed"}[15m])) > 0',
         {"meetingbot_bots_finished_total"}),
        ('absent(up{job="x"} == 1)', {"up"}),
        ("histogram_quantile(0.95, sum by (le) (rate(meetingbot_apply_to_pod_seconds_bucket[5m])))",
         {"meetingbot_apply_to_pod_seconds_bucket"}),
    ],
)  # fmt: skip
def test_metric_names_are_read_from_expressions(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


CASES = Path(__file__).with_name("alert_cases.yaml")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def test_each_alert_fires_on_its_problem_and_not_on_one_users_mistake(tmp_path: Path) -> None:
    """promtool's rule unit tests over the chart's own alerts (tests/integration/
    alert_cases.yaml): every alert has a case where it fires and one where it stays quiet."""
    groups = rule_groups(tmp_path)
    rules = [r for g in groups for r in g["rules"]]
    (job,) = {m for r in rules for m in re.findall(r'job="([^"]+)"', r["expr"])}
    bare = [{k: v for k, v in r.items() if k != "annotations"} for r in rules]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": bare}]}))
    cases = yaml.safe_load(CASES.read_text().replace("JOB", job))
    tests = [
        {
            "name": case["name"],
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in case["series"].items()],
            "alert_rule_test": [
                {
                    "eval_time": a["at"],
                    "alertname": a["alert"],
                    "exp_alerts": [{"exp_labels": labels} for labels in a["fires"]],
                }
                for a in case["alerts"]
            ],
        }
        for case in cases
    ]
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": tests})
    )
    tested = promtool("test", "rules", str(tmp_path / "tests.yaml"))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    firing = {a["alert"] for c in cases for a in c["alerts"] if a["fires"]}
    quiet = {a["alert"] for c in cases for a in c["alerts"] if not a["fires"]}
    alerts = {r["alert"] for r in rules}
    assert firing == alerts, f"no case where these fire: {sorted(alerts - firing)}"
    assert quiet == alerts, f"no case where these stay quiet: {sorted(alerts - quiet)}"


def test_a_wrong_expectation_fails_promtools_rule_tests(tmp_path: Path) -> None:
    """The test above can fail: an alert expected to fire where it does not is reported."""
    rule = {"alert": "Never", "expr": "vector(0) > 1"}
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]})
    )
    case = {"interval": "1m", "input_series": [], "alert_rule_test": [
        {"eval_time": "1m", "alertname": "Never", "exp_alerts": [{"exp_labels": {}}]}]}  # fmt: skip
    (tmp_path / "tests.yaml").write_text(
        yaml.safe_dump({"rule_files": ["rules.yaml"], "evaluation_interval": "1m", "tests": [case]})
    )
    assert promtool("test", "rules", str(tmp_path / "tests.yaml")).returncode != 0


def test_every_alert_links_its_runbook(tmp_path: Path) -> None:
    """Each alert's runbook_url ends in the anchor of a heading of docs/operations.md."""
    headings = {
        line.removeprefix("#### ").strip().lower()
        for line in DOCS.read_text().splitlines()
        if line.startswith("#### ")
    }
    for group in rule_groups(tmp_path):
        for rule in group["rules"]:
            url = rule["annotations"]["runbook_url"]
            assert url.startswith("https://"), url
            assert url.split("#", 1)[1] in headings, f"{rule['alert']}: {url}"
