"""The default render served by real uvicorn over a real socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import ENV_PREFIX, PACKAGE, TEMPLATE_ROOT, free_port, uv_environment
from support.servers import Instance


@pytest.fixture
def server(default_project: Path, tmp_path: Path) -> Iterator[Instance]:
    # Development mode: the default render has no build, as right after `copier copy`.
    with Instance(default_project, tmp_path, env={f"{ENV_PREFIX}ENVIRONMENT": "development"}) as instance:
        yield instance


@pytest.mark.slow
def test_serves_health_and_problem_details(server: Instance) -> None:
    base_url = server.base_url
    assert httpx.get(f"{base_url}/health/live").json() == {"status": "alive"}
    missing = httpx.get(f"{base_url}/no/such/thing")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["request_id"] == missing.headers["x-request-id"]
    created = httpx.post(f"{base_url}/items", json={"name": "mug", "price": "3.50"})
    assert created.status_code == 201
    assert httpx.get(f"{base_url}/items/{created.json()['id']}").json() == created.json()


@pytest.mark.slow
def test_sigterm_stops_cleanly(server: Instance) -> None:
    server.terminate()
    # uvicorn drains, runs the lifespan shutdown, then re-raises the signal it caught, so a
    # clean stop ends with "terminated by SIGTERM" (143 in a shell), never by SIGKILL.
    assert server.process.wait(timeout=30) == -signal.SIGTERM
    messages = [entry["message"] for entry in server.log_entries()]
    assert "service shutting down" in messages
    assert "Application shutdown complete." in messages


@pytest.mark.slow
def test_one_ctrl_c_delivered_twice_still_drains_and_shuts_down(server: Instance) -> None:
    # The terminal's SIGINT to the process group, and `uv run` forwarding its own copy: one
    # keypress. uvicorn alone would take the second for "force quit" and skip the shutdown.
    server.process.send_signal(signal.SIGINT)
    time.sleep(0.05)
    server.process.send_signal(signal.SIGINT)
    assert server.process.wait(timeout=30) == 0
    messages = [entry["message"] for entry in server.log_entries()]
    assert "service shutting down" in messages
    assert "Application shutdown complete." in messages
    assert "Traceback" not in server.log()


def serve_in_a_terminal(project: Path, directory: Path, *arguments: str) -> tuple[subprocess.Popen[str], str]:
    """``uv run python -m <package> serve`` as started from a shell: a process group of its
    own (the terminal's foreground group, which Ctrl-C signals as a whole)."""
    port = free_port()
    environment = {
        **uv_environment(),
        f"{ENV_PREFIX}ENVIRONMENT": "development",
        f"{ENV_PREFIX}LOG_FORMAT": "json",
        f"{ENV_PREFIX}DATABASE_URL": f"sqlite:///{directory / 'service.sqlite3'}",
    }
    command = ["uv", "run", "--project", str(project), "python", "-m", PACKAGE, "serve", "--port", str(port)]
    process = subprocess.Popen(
        [sys.executable, "-m", *command, *arguments],
        cwd=directory,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/health/ready", timeout=1).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    pytest.fail(f"serve {' '.join(arguments)} did not become ready:\n{stderr[-4000:]}")


def ctrl_c(process: subprocess.Popen[str]) -> str:
    """What a terminal does on Ctrl-C: SIGINT to the whole foreground group. Returns stderr."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise
    return stderr


@pytest.mark.slow
@pytest.mark.parametrize("mode", [(), ("--reload",)], ids=["serve", "serve-reload"])
def test_ctrl_c_stops_cleanly_without_a_traceback(default_project: Path, tmp_path: Path, mode: tuple[str, ...]) -> None:
    process, base_url = serve_in_a_terminal(default_project, tmp_path, *mode)
    request_id = "ctrl-c-test-request"
    assert httpx.get(f"{base_url}/health/live", headers={"x-request-id": request_id}).status_code == 200
    stderr = ctrl_c(process)
    assert process.returncode == 0, stderr[-4000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-4000:]
    messages = [json.loads(line)["message"] for line in stderr.splitlines() if line.startswith("{")]
    assert "service shutting down" in messages and "Application shutdown complete." in messages
    # Each request is logged once, by the service's access logger (with its id), in either
    # mode: `--reload` used to add uvicorn's own access line.
    mentions = [line for line in stderr.splitlines() if request_id in line]
    assert len(mentions) == 1, mentions
    assert json.loads(mentions[0])["logger"] == "access"


@pytest.mark.slow
def test_readme_first_command_as_written_on_an_externally_managed_python(tmp_path: Path) -> None:
    """The README's first command, word for word, where ``python3`` is Debian's own (PEP 668:
    ``pip install`` into it is refused), in a fresh checkout of the template; then Ctrl-C."""
    system_python = Path("/usr/bin/python3")
    marker = list(Path("/usr/lib").glob("python3*/EXTERNALLY-MANAGED"))
    if not system_python.is_file() or not marker:
        pytest.skip("no externally managed system Python here")
    readme = (TEMPLATE_ROOT / "README.md").read_text(encoding="utf-8")
    command = readme.split("```console\n", 1)[1].split("\n```", 1)[0].strip()
    assert command.startswith("python3 -m venv ") and f"python -m {PACKAGE} serve" in command

    checkout = tmp_path / "fastapi-service-template"
    environment = {key: value for key, value in uv_environment().items() if not key.startswith(ENV_PREFIX)}
    subprocess.run(["git", "clone", "--quiet", "--no-tags", str(TEMPLATE_ROOT), str(checkout)], check=True)
    for relative in subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=TEMPLATE_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines():
        source = TEMPLATE_ROOT / relative
        if source.is_file():
            (checkout / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, checkout / relative)
    port = free_port()
    environment.update(
        # A shell on a stock system: Debian's python3 and git first; the service on a free port.
        PATH=os.pathsep.join(["/usr/local/bin", "/usr/bin", "/bin"]),
        HOME=str(tmp_path / "home"),
        GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"),
        **{f"{ENV_PREFIX}PORT": str(port)},
    )
    (tmp_path / "gitconfig").write_text("[user]\n\tname = README\n\temail = readme@example.com\n")
    (tmp_path / "home").mkdir()
    process = subprocess.Popen(
        ["bash", "-c", command],
        cwd=checkout,
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.5)
    else:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=30)
        pytest.fail(f"the README's command did not serve:\n{stdout[-3000:]}\n{stderr[-5000:]}")
    stderr = ctrl_c(process)
    assert process.returncode == 0, stderr[-4000:]
    assert "Traceback" not in stderr, stderr[-4000:]
    project = tmp_path / "acme-orders"
    answers = (project / ".copier-answers.yml").read_text()
    assert f"_src_path: {checkout}\n" in answers  # updatable from inside the service
    log = subprocess.run(["git", "log", "--format=%s"], cwd=project, capture_output=True, text=True, check=True)
    assert log.stdout.startswith("Generate the project from the FastAPI service template")
