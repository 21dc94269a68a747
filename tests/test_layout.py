"""The package's layout as configs and docs name it: callbacks by their short path, one class
per name, and docs/reliability.md naming only tests that exist. 0.x keeps no old module path
or setting working (the README says so)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dataset_files import write_fashion_mnist

import minc_lightning
from minc_lightning.commands.fit import run_cli


def test_a_config_names_a_callback_by_its_short_path(tmp_path):
    """What the README and architecture.md write: minc_lightning.callbacks.<Name>."""
    write_fashion_mnist(tmp_path / "data", n_train=8, n_test=4)
    config = Path(__file__).parents[1] / "configs" / "quickstart.yaml"
    cli = run_cli(
        [
            f"--config={config}",
            f"--data.root={tmp_path / 'data'}",
            "--trainer.callbacks+=minc_lightning.callbacks.OnlineKNN",
            "--trainer.callbacks+=minc_lightning.callbacks.FastPaths",
        ],
        run=False,
    )
    kinds = {type(c).__name__ for c in cli.trainer.callbacks}
    assert {"OnlineKNN", "FastPaths"} <= kinds


def test_no_function_in_the_package_is_over_40_lines_nor_its_two_classes_250():
    """The shape a newcomer reads (issue 36): a function's body (docstring to last line; a
    signature of many documented options is not logic) fits on a screen, and the module and
    data module classes stay under 250 lines (their helpers live beside them)."""
    package = Path(minc_lightning.__file__).parent
    long_functions, classes = [], {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.end_lineno - node.body[0].lineno + 1
                if body > 40:
                    long_functions.append(f"{path.relative_to(package)}:{node.name} ({body})")
            elif isinstance(node, ast.ClassDef):
                classes[node.name] = node.end_lineno - node.lineno + 1
    assert long_functions == []
    assert classes["MINCModule"] < 250 and classes["MINCDataModule"] < 250, classes


def test_the_package_and_its_data_module_name_one_class():
    assert minc_lightning.data.MINCDataModule is minc_lightning.MINCDataModule


def test_every_test_docs_reliability_names_exists():
    """docs/reliability.md makes no promise without a test: each test it names is defined."""
    root = Path(__file__).parents[1]
    defined = {
        m.group(1)
        for path in (root / "tests").glob("test_*.py")
        for m in re.finditer(r"^def (test_\w+)", path.read_text(), re.M)
    }
    named = set(
        re.findall(r"(test_\w+)(?:\[[^\]]*\])?`", (root / "docs/reliability.md").read_text())
    )
    assert named, "docs/reliability.md names no test"
    assert named <= defined, sorted(named - defined)
    promises = [
        line
        for line in (root / "docs/reliability.md").read_text().splitlines()
        if line.startswith(("| ", "- ")) and not line.startswith("| promise")
    ]
    untested = [line[:80] for line in promises if not re.search(r"test_\w+", line)]
    assert not untested, untested  # each promise beside the test that holds it


def test_every_module_says_where_it_is_tested():
    """tests/README.md names every module of src/ and only test files that exist."""
    index = (Path(__file__).parent / "README.md").read_text()
    package = Path(minc_lightning.__file__).parent
    modules = {
        p.relative_to(package).as_posix() for p in package.rglob("*.py") if p.name != "__init__.py"
    }
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \|", index, flags=re.M))
    assert modules == listed, f"missing: {modules - listed}; gone: {listed - modules}"
    named = set(re.findall(r"`(test_\w+\.py)`", index))
    assert all((Path(__file__).parent / name).is_file() for name in named)
