"""Packaging: pyproject.toml declares the runtime dependencies (ranges) and the extras, requirements.txt pins a
set inside those ranges, the Docker build context stays small; and (slow) `pip install .` into an empty
virtual environment gives a working `seam`."""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
TEST_TOOLS = {"pytest", "playwright"}


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            assert not req.extras, f"{line}: no extras in requirements.txt (it doubles as a pip constraints file)"
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line}: requirements.txt pins exact versions"
            pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_runtime_dependencies_are_declared_and_the_pins_satisfy_them():
    project, pins = _project(), _pins()
    deps = [Requirement(d) for d in project["dependencies"]]
    names = {canonicalize_name(r.name) for r in deps}
    assert not names & TEST_TOOLS, "test tools are not runtime dependencies"
    assert {"torch", "transformers", "pandas", "scipy", "scikit-learn", "openai", "streamlit"} <= names
    extras = project["optional-dependencies"]
    assert set(extras) >= {"dev", "adv", "ray", "postgres", "gpu"}
    assert {canonicalize_name(Requirement(r).name) for r in extras["dev"]} >= TEST_TOOLS
    assert [Requirement(r).name for r in extras["adv"]] == ["textattack"]
    assert [Requirement(r).name for r in extras["postgres"]] == ["psycopg"]
    for req in deps + [Requirement(r) for group in extras.values() for r in group]:
        name = canonicalize_name(req.name)
        if name in pins:  # the tested set lies inside the declared ranges
            assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} is outside {req}"
    # every runtime dependency is pinned, so `make setup` and `pip install -c requirements.txt .` agree
    unpinned = names - set(pins)
    assert unpinned <= {"huggingface-hub", "tokenizers", "xxhash"}, unpinned  # these come with transformers / datasets


def test_docker_build_context_carries_only_the_sources():
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    assert patterns[0] == "*", "the build context is an allow-list"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    assert allowed == {"requirements.txt", "pyproject.toml", "README.md", "seam", "db", "jobs", "app", "pages"}
    for kept_out in (".venv", ".git", ".whl", "demo-project", "runs", "tests"):
        assert not any(fnmatch.fnmatch(kept_out, a) for a in allowed)
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name in allowed - {"README.md", "pyproject.toml", "requirements.txt"}:
        assert f"COPY {name} ./{name}" in dockerfile, name  # what is sent is what is copied
    assert "\nUSER " in dockerfile and "ARG CUDA" in dockerfile


@pytest.mark.slow
def test_pip_install_into_an_empty_venv_gives_a_working_seam(tmp_path):
    # The pinned torch first, so that pip keeps that build (a CPU build where pip finds one) rather than
    # downloading the newest CUDA build; then plain `pip install .` from a copy of the checkout.
    torch_pin = _pins()["torch"]
    env = dict(os.environ, TORCH_FIRST=f"torch=={torch_pin}", PYTHON=sys.executable)
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install_smoke.sh"), str(tmp_path / "venv")],
                          capture_output=True, text=True, env=env, timeout=3000)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "install smoke: ok (3 instructions scored" in proc.stdout
