"""The per-stage conda environments pin exactly what the tested environment holds."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ENVS = sorted((REPO / "envs").glob("*.yaml"))
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+)$")


def canonical(name: str) -> str:
    """Package name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    """requirements.lock as {canonical name: version}."""
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[canonical(match.group(1))] = match.group(2)
    return pins


def env_pins(path: Path) -> dict[str, str]:
    """The pip pins of one environment file as {canonical name: version}."""
    spec = yaml.safe_load(path.read_text())
    pins = {}
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for line in dep["pip"]:
                if line.startswith("-"):
                    continue
                match = PIN.match(line)
                assert match, f"{path.name}: '{line}' is not pinned as name==version"
                pins[canonical(match.group(1))] = match.group(2)
    return pins


def test_every_rule_environment_exists() -> None:
    """Each `conda:` directive of the rules names an environment file that exists."""
    named = set()
    for smk in (REPO / "rules").glob("*.smk"):
        named |= set(re.findall(r'conda:\s*\n\s*"\.\./envs/([\w-]+\.yaml)"', smk.read_text()))
    assert named, "no rule declares a conda environment"
    assert named <= {p.name for p in ENVS}


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_environment_matches_lock_and_installed(path: Path) -> None:
    """Every package of the environment has the version of requirements.lock and of this installation."""
    pins = env_pins(path)
    locked = lock()
    assert pins, f"{path.name} pins nothing"
    for name, version in pins.items():
        assert locked.get(name) == version, f"{path.name}: {name}=={version}, requirements.lock has {locked.get(name)}"
        assert importlib.metadata.version(name) == version, f"{path.name}: {name}=={version} is not what is installed"


@pytest.mark.parametrize("path", ENVS, ids=lambda p: p.name)
def test_environment_installs_brainmets(path: Path) -> None:
    """A post-deploy script beside each environment installs brainmets itself, without other packages."""
    script = path.with_name(path.stem + ".post-deploy.sh")
    assert "pip install --no-deps -e ." in script.read_text()


def test_no_tracked_link_leaves_the_repository() -> None:
    """A committed symbolic link must resolve inside the checkout: one to a local environment breaks a clone's setup."""
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=REPO, capture_output=True, text=True, check=True)
    links = [line.split("\t", 1)[1] for line in listing.stdout.splitlines() if line.startswith("120000 ")]
    assert links, "the workflow schema is expected to be a link to the package copy"
    for link in links:
        target = (REPO / link).resolve()
        assert target.is_relative_to(REPO) and target.exists(), f"{link} -> {target}"
