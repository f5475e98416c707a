"""The default render's locked dependencies: above the known CVE floors, and audited by
pip-audit exactly as the generated CI audits them (``uv export`` of the lock, hashes
required, ``--strict``)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from support import uv

# Each fixes a CVE in a package the service gets through fastapi or uvicorn.
FLOORS = {"h11": Version("0.16.0"), "starlette": Version("1.3.1"), "python-multipart": Version("0.0.30")}


def locked_versions(project: Path) -> dict[str, Version]:
    lock = tomllib.loads((project / "uv.lock").read_text())
    return {package["name"]: Version(package["version"]) for package in lock["package"] if "version" in package}


def test_the_lock_clears_the_cve_floors(default_project: Path) -> None:
    locked = locked_versions(default_project)
    assert {"h11", "starlette"} <= set(locked)
    below = {name: str(locked[name]) for name, floor in FLOORS.items() if name in locked and locked[name] < floor}
    assert below == {}


def test_the_floors_are_declared(default_project: Path) -> None:
    # The lock alone would not keep them: `uv lock --upgrade-package` or a fresh lock may pick
    # any release fastapi's and uvicorn's ranges allow.
    declared = tomllib.loads((default_project / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {"h11>=0.16.0", "starlette>=1.3.1"} <= set(declared)


@pytest.mark.slow
def test_pip_audit_finds_nothing_in_the_lock(default_project: Path, tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    export = uv(default_project, "export", "--locked", "--no-dev", "--no-emit-project", "--format", "requirements-txt")
    requirements.write_text(export.stdout)
    audit = [sys.executable, "-m", "pip_audit", "--require-hashes", "--disable-pip", "--progress-spinner", "off"]
    result = subprocess.run(
        [*audit, "--format", "json", "-r", str(requirements)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.stdout, result.stderr[-3000:]
    report = {dependency["name"]: dependency for dependency in json.loads(result.stdout)["dependencies"]}
    # Every locked runtime package for this platform was read from the export.
    exported = [Requirement(line.rstrip(" \\")) for line in export.stdout.splitlines() if "==" in line]
    assert set(report) == {req.name for req in exported if req.marker is None or req.marker.evaluate()}
    vulnerable = {name: [vuln["id"] for vuln in entry["vulns"]] for name, entry in report.items() if entry.get("vulns")}
    assert vulnerable == {}
    assert result.returncode == 0, result.stderr[-3000:]
    skipped = {name: entry["skip_reason"] for name, entry in report.items() if "skip_reason" in entry}
    if skipped and len(skipped) == len(report):
        # pip-audit's PyPI service reads /pypi/<name>/<version>/json; an index that serves only
        # the project pages (as the one of these test machines does) leaves nothing audited.
        # The generated CI passes --strict, so there this is a failure, never a silent pass.
        pytest.skip(f"the package index answers no per-version metadata: {next(iter(skipped.values()))}")
    assert skipped == {}
