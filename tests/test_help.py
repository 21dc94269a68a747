"""Every argument a config can name has its own line of help in ``minc-lightning fit --help``.

jsonargparse takes each argument's help from its own ``Args:`` entry of the class docstring; an
entry that lumps several arguments together ("alpha, triangular: the loss") leaves all but the
first with none, and gives the first the others' text.
"""

from __future__ import annotations

import inspect
import re

import pytest
from jsonargparse import ArgumentParser
from lightning.pytorch import Callback

import minc_lightning
from minc_lightning import backbones
from minc_lightning.callbacks import (
    checkpoint,
    fast_paths,
    knn,
    lambda_pictures,
    progress,
    rankme,
)
from minc_lightning.data import MINCDataModule
from minc_lightning.module import MINCModule


def configurable() -> list[type]:
    """The modules, the backbones and every callback a config can add (the CLI's own config
    saver, ``callbacks.save_config``, is not one)."""
    callbacks = {
        obj
        for module in (checkpoint, knn, lambda_pictures, progress, rankme, fast_paths)
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, Callback) and obj.__module__.startswith(minc_lightning.__name__)
    }
    nets = [backbones.ResNet, backbones.ConvNet, backbones.Timm]
    return [MINCModule, MINCDataModule, *nets, *sorted(callbacks, key=lambda c: c.__name__)]


def help_texts(cls: type) -> dict[str, str]:
    """Argument name → its help as ``--help`` prints it, whitespace joined."""
    parser = ArgumentParser()
    parser.add_class_arguments(cls, "x")
    texts: dict[str, str] = {}
    name = None
    for line in parser.format_help().splitlines():
        if match := re.match(r"\s+--x\.(\w+)(?: \S+)?(.*)$", line):
            name, rest = match.groups()
            texts[name] = rest.strip()
        elif name and line.startswith(" " * 10):
            texts[name] = f"{texts[name]} {line.strip()}".strip()
        else:
            name = None
    return texts


@pytest.mark.parametrize("cls", configurable(), ids=lambda c: c.__name__)
def test_every_argument_has_its_own_help(cls):
    arguments = [
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    texts = help_texts(cls)
    for name in arguments:
        assert name in texts, f"{cls.__name__}.{name} is not in --help"
        assert not texts[name].startswith("(type"), f"{cls.__name__}.{name} has no help text"
        lumped = [other for other in arguments if other != name and f"{other}:" in texts[name]]
        assert not lumped, f"{cls.__name__}.{name}'s help also describes {lumped}"


def test_the_check_finds_an_argument_without_help():
    class Lumped(Callback):
        """A callback.

        Args:
            a, b: two numbers in one entry.
        """

        def __init__(self, a: int = 1, b: int = 2) -> None:
            pass

    texts = help_texts(Lumped)
    assert texts["b"].startswith("(type")


@pytest.mark.parametrize(
    "owner, argument, names",
    [
        (MINCModule, "objective", "minc_lightning.objectives.OBJECTIVES"),
        (MINCDataModule, "dataset", "minc_lightning.data.DATASETS"),
    ],
)
def test_the_help_of_a_choice_names_every_choice(owner, argument, names):
    """``--model.objective`` and ``--data.dataset`` list their choices in their help: an
    objective or dataset added to its table is added to the help too (the second file it
    touches, docs/architecture.md)."""
    module, table = names.rsplit(".", 1)
    keys = getattr(__import__(module, fromlist=[table]), table)
    doc = inspect.getdoc(owner)
    entry = re.search(rf"^ *{argument}: (.*?)(?=^ *\w+: |\Z)", doc, flags=re.M | re.S).group(1)
    missing = [key for key in keys if re.search(rf"\b{key}\b", entry) is None]
    assert missing == [], f"{owner.__name__}'s {argument} help does not name {missing}"
