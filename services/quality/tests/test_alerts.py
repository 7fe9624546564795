"""The alert rules (charts/careops/files/alerts.yaml, the chart's PrometheusRule) pass their
`promtool test rules` unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

TESTS = Path(__file__).parent / "alerts_test.yaml"
RULES = Path(__file__).resolve().parents[3] / "charts" / "careops" / "files" / "alerts.yaml"


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: run scripts/system-deps.sh (Debian package prometheus)"
    assert RULES.exists()
    done = subprocess.run(
        [promtool, "test", "rules", str(TESTS)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout
