"""requirements.lock pins what pyproject asks for, hash-checked, torch CPU only; the image uses it.

Regenerating the lock needs the package index (``make lock``); these checks need nothing but the
files, so a dependency added to pyproject without relocking fails here, offline.
"""

from __future__ import annotations

import re
import tomllib

from deploy.helpers import DOCKERFILE, ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = ROOT / "requirements.lock"
# Packages the CUDA build of torch pulls in on Linux; none may be in a CPU-only image.
CUDA_PACKAGES = re.compile(r"^(nvidia-.*|triton|pytorch-triton.*|cuda-.*)$")


def _lock() -> dict[str, tuple[Version, list[str]]]:
    """name -> (pinned version, hashes) for every entry of the lock."""
    entries: dict[str, tuple[Version, list[str]]] = {}
    name = None
    for line in LOCK.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)", line)
        if pin:
            name = canonicalize_name(pin.group(1))
            assert name not in entries, f"{name} pinned twice"
            entries[name] = (Version(pin.group(2)), [])
        elif name and (h := re.search(r"--hash=sha256:([0-9a-f]{64})", line)):
            entries[name][1].append(h.group(1))
    return entries


def _runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_every_runtime_dependency_is_pinned_within_its_range() -> None:
    lock = _lock()
    for req in _runtime_requirements():
        name = canonicalize_name(req.name)
        assert name in lock, f"{req} is not in requirements.lock: run `make lock`"
        version = lock[name][0]
        assert req.specifier.contains(version, prereleases=True), (
            f"lock has {name}=={version}, pyproject {req}"
        )


def test_the_image_can_trace() -> None:
    """The ``otel`` extra is locked too: RECSERVE_OTEL_ENDPOINT works in the image without a rebuild."""
    lock = _lock()
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["otel"]
    for req in map(Requirement, extra):
        name = canonicalize_name(req.name)
        assert name in lock, f"{req} is not in requirements.lock: run `make lock`"
        assert req.specifier.contains(lock[name][0], prereleases=True)


def test_every_pin_is_hash_checked() -> None:
    unhashed = [name for name, (_, hashes) in _lock().items() if not hashes]
    assert not unhashed


def test_torch_is_the_cpu_build_and_no_cuda_package_is_locked() -> None:
    lock = _lock()
    assert lock["torch"][0] == Version("2.13.0+cpu")
    cuda = sorted(name for name in lock if CUDA_PACKAGES.match(name))
    assert not cuda, f"CUDA packages in the lock: {cuda}"


def test_the_lock_is_for_the_images_python() -> None:
    header = LOCK.read_text().split("\n", 3)[:2]
    python = re.search(r"--python-version (\d+\.\d+)", header[1])
    assert python, header
    base = re.search(r"^ARG PYTHON_VERSION=(\d+\.\d+)", DOCKERFILE.read_text(), re.M)
    assert base and base.group(1) == python.group(1)
    assert "--generate-hashes" in header[1] and "x86_64" in header[1]


def test_the_image_installs_exactly_the_lock() -> None:
    dockerfile = DOCKERFILE.read_text()
    install = re.search(r"^RUN pip install (.*)-r requirements\.lock$", dockerfile, re.M)
    assert install, "the Dockerfile does not install from requirements.lock"
    assert {"--no-deps", "--require-hashes"} <= set(install.group(1).split())
    assert re.search(r"^COPY requirements\.lock ", dockerfile, re.M)
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text().splitlines()
    # the project itself adds nothing on top of the lock
    assert re.search(r"^RUN pip install --no-deps \. ", dockerfile, re.M)
