"""The deployment assets in deploy/: example config, Prometheus scrape config and alert rules, Grafana
dashboard.  Each is checked by the tool that will read it in production (``genretag check-config``,
``promtool``), the alert rules get promtool unit tests (tests/deploy/rules_test.yml), and every metric
name in the rules and the dashboard must be one the daemon actually exposes, so a renamed metric
cannot silently turn an alert or a panel into a query that never matches."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from genretag.daemon.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
CONFIG = DEPLOY / "genretag.toml"
PROMETHEUS = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "genretag-rules.yml"
DASHBOARD = DEPLOY / "grafana" / "genretag-dashboard.json"
RULES_TEST = Path(__file__).with_name("rules_test.yml")

_METRIC = re.compile(r"(?<![\w:])(genretag_[a-zA-Z0-9_]+)")
_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run promtool; a missing promtool fails (never skips): the alert rules would go unchecked."""
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail(
            "promtool is not installed (Debian: apt-get install prometheus; or put the promtool "
            "binary of a Prometheus release on PATH); the alert rules cannot be checked without it"
        )
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def _ok(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f"{result.args} exit {result.returncode}:\n{result.stdout}{result.stderr}"


def rule_exprs() -> dict[str, str]:
    """alert name -> PromQL expression (the rules file keeps each expr on one line)."""
    alerts = re.findall(r"^\s*- alert:\s*(\S+)\s*\n\s*expr:\s*(.+?)\s*$", RULES.read_text(), re.M)
    assert alerts, f"no alerts found in {RULES}"
    return dict(alerts)


def dashboard_exprs() -> list[str]:
    """Every PromQL expression in the dashboard: panel targets and query variables."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = []
    for panel in dash["panels"]:
        for nested in [panel, *panel.get("panels", [])]:
            exprs += [t["expr"] for t in nested.get("targets", []) if t.get("expr")]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(var["definition"])
    return exprs


def exposed_names() -> set[str]:
    """Every sample name the daemon's /metrics can show: rendered with one stream registered, plus the
    names each ``# TYPE`` line implies (counter_total, histogram _bucket/_sum/_count, info _info)."""
    metrics = Metrics()
    for family in (
        metrics.windows_processed,
        metrics.windows_silent,
        metrics.stream_up,
        metrics.silence,
        metrics.label_changes,
        metrics.speech_seconds,
        metrics.tempo_bpm,
    ):
        family.touch("radio")
    metrics.stream(metrics.reconnects, "radio", "url")
    metrics.stream(metrics.source_errors, "radio", "reconnect", "url")
    metrics.stream(metrics.windows_dropped, "radio", "queue_full")
    for scores, name in (
        (metrics.scores, "rock"),
        (metrics.mood_scores, "calm"),
        (metrics.tag_scores, "piano"),
    ):
        scores.start([name])
        scores.latest["radio"] = [0.5]
    metrics.stream_state.set("radio", "speech")
    metrics.key.set("radio", "A minor", 0.5)
    text = metrics.render().decode()
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and line[0] != "#"}
    suffixes = {"counter": ("_total",), "gauge": ("",), "histogram": _HISTOGRAM_SUFFIXES, "info": ("_info",)}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names |= {name + suffix for suffix in suffixes.get(kind, ("",))}
    return names


def unknown_metrics(exprs: list[str], known: set[str]) -> set[str]:
    used = {name for expr in exprs for name in _METRIC.findall(expr)}
    assert used, "no genretag_ metric found in the expressions"
    return {name for name in used if name not in known}


def test_example_config_is_valid() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genretag.cli.main", "check-config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    _ok(result)
    text = CONFIG.read_text()
    for kind in ("url:", "mic:", "zmq:"):
        assert f'spec = "{kind}' in text, f"the example config has no {kind} source"


def test_prometheus_config_and_rules_pass_promtool() -> None:
    _ok(promtool("check", "rules", str(RULES)))
    _ok(promtool("check", "config", str(PROMETHEUS)))  # also checks the rule file it references
    scrape = PROMETHEUS.read_text()
    assert "job_name: genretag" in scrape and '"127.0.0.1:9464"' in scrape


def test_alert_rules_fire() -> None:
    """Dead air, stream down and auth failures fire for the right series at the right time, not for others."""
    _ok(promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent))


def test_rules_cover_a_broadcaster() -> None:
    exprs = rule_exprs()
    assert set(exprs) == {
        "GenretagDeadAir",
        "GenretagStreamDown",
        "GenretagWindowsDropped",
        "GenretagHighLatency",
        "GenretagModelReloadFailed",
        "GenretagDaemonDown",
        "GenretagAuthFailures",
    }
    assert 'up{job="genretag"}' in exprs["GenretagDaemonDown"]  # the job name of prometheus.yml
    text = RULES.read_text()
    assert text.count("severity:") == len(exprs)
    assert text.count("summary:") == len(exprs) and text.count("description:") == len(exprs)


def test_rules_use_only_exposed_metrics() -> None:
    assert unknown_metrics(list(rule_exprs().values()), exposed_names()) == set()


def test_dashboard_uses_only_exposed_metrics() -> None:
    exprs = dashboard_exprs()
    assert unknown_metrics(exprs, exposed_names()) == set()
    joined = "\n".join(exprs)
    for needed in (
        "genretag_smoothed_score",
        "genretag_silence_seconds_total",
        "histogram_quantile(0.5, sum by (le) (rate(genretag_end_to_end_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le) (rate(genretag_end_to_end_latency_seconds_bucket",
        "genretag_inference_batch_size_bucket",
        "genretag_windows_dropped_total",
    ):
        assert needed in joined, f"the dashboard has no panel querying {needed}"


def test_dashboard_is_a_grafana_dashboard() -> None:
    dash = json.loads(DASHBOARD.read_text())
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in dash["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_name_check_catches_a_typo() -> None:
    """The metric-name check itself works: a misspelt or unsuffixed name is reported."""
    known = exposed_names()
    assert "genretag_end_to_end_latency_seconds_bucket" in known
    assert "genretag_smoothed_score" in known and "genretag_silence_seconds_total" in known
    bad = ["rate(genretag_windows_droped_total[5m])", "genretag_silence_seconds > 1"]
    assert unknown_metrics(bad, known) == {"genretag_windows_droped_total", "genretag_silence_seconds"}


def test_the_fleet_scrape_jobs_pass_promtool_when_switched_on(tmp_path: Path) -> None:
    """The commented fleet jobs of prometheus.yml (README, "Scaling out") are valid once uncommented."""
    text = re.sub(r"^  # (- job_name|  )", r"  \1", PROMETHEUS.read_text(), flags=re.M)
    assert {"job_name: genretag-fleet", "job_name: genretag-kubernetes"} <= set(
        re.findall(r"job_name: \S+", text)
    )
    (tmp_path / PROMETHEUS.name).write_text(text)
    shutil.copy(RULES, tmp_path / RULES.name)
    _ok(promtool("check", "config", str(tmp_path / PROMETHEUS.name)))
