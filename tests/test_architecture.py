"""The project's shape: one name per stage, one command module per command, no import cycles between stages.

Read from the source with `ast` (nothing heavy is imported), so that a misplaced import fails here in a second.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "brainmets"
#: the stages: each has a rule file, a package, command modules and a config section of the same name
STAGES = ("demo", "preprocess", "train", "inference", "track", "rano", "review", "export", "evaluation")
#: rule files that belong to no stage: shared input functions and the per-stage configuration files
SHARED_RULE_FILES = {"common.smk", "config.smk"}


def imported_modules(path: Path) -> set[str]:
    """Every module a Python file imports (`from brainmets import x` counts as `brainmets.x`)."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def stage_of(module: str) -> str | None:
    """The stage package a dotted module name lies in, or None for the ground floor and other libraries."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "brainmets" and parts[1] in STAGES else None


def stage_edges() -> set[tuple[str, str]]:
    """(importer, imported) for every import of one stage package by another."""
    edges = set()
    for stage in STAGES:
        for path in (PACKAGE / stage).rglob("*.py"):
            edges.update((stage, other) for m in imported_modules(path) if (other := stage_of(m)) not in (None, stage))
    return edges


def documented_edges() -> set[tuple[str, str]]:
    """The one-way edges between stage packages that docs/architecture.md lists (`a` -> `b` lines)."""
    text = (REPO / "docs" / "architecture.md").read_text()
    return set(re.findall(r"^- `(\w+)` -> `(\w+)`", text, flags=re.MULTILINE))


def find_cycle(edges: set[tuple[str, str]]) -> list[str]:
    """One cycle of a directed graph as a list of nodes (first repeated at the end), or [] without cycles."""
    graph: dict[str, list[str]] = {}
    for a, b in sorted(edges):
        graph.setdefault(a, []).append(b)
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str]:
        state[node] = 1
        for nxt in graph.get(node, []):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (cycle := visit(nxt, path + [node])):
                return cycle
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (cycle := visit(start, [])):
            return cycle
    return []


def test_find_cycle_reports_a_cycle_and_accepts_a_chain() -> None:
    """The cycle finder the next test relies on: a -> b -> c -> a is a cycle, a -> b -> c is not."""
    assert find_cycle({("a", "b"), ("b", "c"), ("c", "a")}) == ["a", "b", "c", "a"]
    assert find_cycle({("x", "y"), ("y", "x")}) == ["x", "y", "x"]
    assert find_cycle({("a", "b"), ("b", "c"), ("a", "c")}) == []


def test_no_import_cycle_between_stage_packages() -> None:
    """Stage packages import one another along one-way edges only."""
    assert find_cycle(stage_edges()) == []


def test_stage_imports_are_the_documented_edges() -> None:
    """Every import of one stage package by another is an edge listed in docs/architecture.md, and vice versa."""
    assert stage_edges() == documented_edges()


def test_ground_floor_imports_no_stage_package() -> None:
    """Modules outside the stage packages (io, config, network, ...) import no stage package."""
    floor = [p for p in PACKAGE.rglob("*.py") if p.relative_to(PACKAGE).parts[0] not in STAGES]
    assert PACKAGE / "network" / "modeldir.py" in floor
    offenders = {str(p.relative_to(REPO)): sorted(filter(stage_of, imported_modules(p))) for p in floor}
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def test_library_modules_import_no_command_module() -> None:
    """Command modules are leaves: no library module imports a `cli_<command>` module."""
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in imported_modules(path) if ".cli_" in m)
        for path in PACKAGE.rglob("*.py")
        if not path.name.startswith("cli")
    }
    assert {path: modules for path, modules in offenders.items() if modules} == {}


def command_modules() -> dict[str, str]:
    """`brainmets` subcommand -> the module that implements it (brainmets.cli.COMMANDS, read with ast)."""
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "COMMANDS":
            return ast.literal_eval(node.value)
    raise AssertionError("brainmets/cli.py defines no COMMANDS")


def test_every_command_module_is_named_after_its_command() -> None:
    """A stage's command `x-y` lives in brainmets/<stage>/cli_x_y.py; every such module is a command."""
    commands = command_modules()
    for name, module in commands.items():
        if stage_of(module):
            assert module.rsplit(".", 1)[1] == "cli_" + name.replace("-", "_"), name
    on_disk = {f"brainmets.{stage}.{path.stem}" for stage in STAGES for path in (PACKAGE / stage).glob("cli_*.py")}
    assert on_disk == {m for m in commands.values() if stage_of(m)}


@pytest.mark.parametrize("stage", STAGES)
def test_stage_has_one_name_everywhere(stage: str) -> None:
    """Each stage has its package, its settings module, its rule file (included) and its config section."""
    assert (PACKAGE / stage / "__init__.py").is_file()
    assert (PACKAGE / stage / "settings.py").is_file()
    assert (REPO / "rules" / f"{stage}.smk").is_file()
    assert f'include: "rules/{stage}.smk"' in (REPO / "Snakefile").read_text()
    assert stage in yaml.safe_load((PACKAGE / "config.schema.yaml").read_text())["properties"]


def test_rule_files_are_stages() -> None:
    """Every rule file but the shared ones is named after a stage."""
    names = {path.name for path in (REPO / "rules").glob("*.smk")}
    assert names - SHARED_RULE_FILES == {f"{stage}.smk" for stage in STAGES}
