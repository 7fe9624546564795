"""The allow-list contract type (scripts/import_contracts.py) refuses what it does not name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
[importlinter]
root_package = toy
include_external_packages = true
contract_types =
    allowlist: scripts.import_contracts.AllowlistContract

[importlinter:contract:domain]
name = toy domain
type = allowlist
source_modules =
    *.domain
allowed_modules =
    toy.kernel
"""


def lint(tmp_path: Path, domain: str) -> subprocess.CompletedProcess[str]:
    """Returns lint-imports' run over a toy package whose domain module reads `domain`."""
    package = tmp_path / "toy"
    (package / "domain").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "kernel.py").write_text("import yaml\n")
    (package / "application.py").write_text("")
    (package / "domain" / "__init__.py").write_text("from toy.domain import rules\n")
    (package / "domain" / "rules.py").write_text(domain)
    config = tmp_path / "importlinter.ini"
    config.write_text(CONFIG)
    return subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--config", str(config), "--no-cache"],
        cwd=ROOT,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )


def test_standard_library_own_modules_and_allowed_ones_pass(tmp_path: Path) -> None:
    result = lint(tmp_path, "import json\nfrom datetime import datetime\nfrom toy import kernel\n")
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_third_party_or_other_layer_import_is_refused(tmp_path: Path) -> None:
    result = lint(tmp_path, "import json\nimport sqlalchemy\nfrom toy import application\n")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "toy.domain.rules is not allowed to import sqlalchemy (l.2)" in result.stdout
    assert "toy.domain.rules is not allowed to import toy.application (l.3)" in result.stdout
    assert "json" not in result.stdout.split("Broken contracts")[-1]
