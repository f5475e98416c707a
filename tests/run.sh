#!/usr/bin/env bash
# Runs the template's whole test suite from nothing: a virtualenv with the test tools, then
# pytest. Downloads are cached (pip's and uv's caches), the environments are not.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages for the container and Kubernetes tests (podman builds and runs the generated
# image; debootstrap makes its base image). Installed only when missing; needs root.
# runc is named explicitly: apt would otherwise pick crun, which fails on these machines.
# postgresql (server and psql client) is for the throwaway server tests/support/postgres.py runs itself.
system_packages=(podman buildah runc conmon containernetworking-plugins slirp4netns uidmap fuse-overlayfs debootstrap
  postgresql)
missing=()
if command -v dpkg-query >/dev/null; then
  for package in "${system_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
  done
fi
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]]; then
    echo "tests/run.sh: installing ${missing[*]}" >&2
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
      # Debian's package would otherwise make and start a "main" cluster on port 5432: a server
      # nobody asked for, left running. The tests make their own clusters (tests/support/postgres.py).
      mkdir -p /etc/postgresql-common/createcluster.d
      echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/no-main-cluster.conf
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "tests/run.sh: missing Debian packages ${missing[*]} (install them as root);" \
      "the container and PostgreSQL tests will fail without them" >&2
  fi
fi

python=${PYTHON:-python3}
venv=${TEST_VENV:-.venv-tests}
rm -rf "$venv"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r tests/requirements.txt
"$venv/bin/python" -m pip install --quiet --no-deps -r tests/requirements-nodeps.txt

export PATH="$PWD/$venv/bin:$PATH"
exec "$venv/bin/python" -m pytest "$@"
