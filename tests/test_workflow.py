"""The generated CI workflow and Dependabot configuration, audited by zizmor (offline: no
GitHub API calls).

The workflow differs only by the database answer (PostgreSQL adds a service container), so
one render of each is audited. Rendering without syncing costs about a second.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import render

WORKFLOW = Path(".github") / "workflows" / "ci.yml"
# What the pedantic persona may still report, and why it stays:
# - unpinned-images: the PostgreSQL service image has no digest here; pinning one needs the
#   registry, and a digest is per platform and per rebuild of the tag.
PEDANTIC_ACCEPTED = {"unpinned-images"}


def zizmor() -> str:
    found = shutil.which("zizmor", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        pytest.fail("zizmor is not installed (tests/requirements.txt installs it)")
    return found


def findings(inputs: Path, persona: str) -> list[str]:
    result = subprocess.run(
        [zizmor(), "--offline", "--no-progress", "--persona", persona, "--format", "json", str(inputs)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # zizmor exits non-zero when it reports findings; anything it cannot parse is an error.
    assert result.stdout.strip(), result.stderr
    return sorted(finding["ident"] for finding in json.loads(result.stdout) if not finding["ignored"])


@pytest.fixture(scope="module", params=["sqlite", "postgresql", "none"])
def workflow(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = render(tmp_path_factory.mktemp(f"workflow-{request.param}") / "service", database=request.param)
    return project / WORKFLOW


def test_workflow_has_no_zizmor_findings(workflow: Path) -> None:
    assert findings(workflow.parent.parent, "regular") == []


def test_workflow_has_only_the_accepted_pedantic_findings(workflow: Path) -> None:
    assert set(findings(workflow.parent.parent, "pedantic")) <= PEDANTIC_ACCEPTED


def test_actions_are_pinned_to_commits(workflow: Path) -> None:
    uses = [line.split("uses:", 1)[1].strip() for line in workflow.read_text().splitlines() if "uses:" in line]
    assert uses
    for action in uses:
        reference, _, comment = action.partition("#")
        _, _, commit = reference.strip().partition("@")
        assert len(commit) == 40 and all(c in "0123456789abcdef" for c in commit), action
        assert comment.strip().startswith("v"), f"{action}: name the release the commit is"
