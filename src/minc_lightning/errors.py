"""What a user got wrong, as exceptions that the commands print as one line.

A ``UserError`` is raised where a setting, a path or a file is checked, with a message that
names it and says what to do. The ``minc-lightning*`` commands print it as one line on stderr
(``minc-lightning: error: ...``) and exit with ``USER_ERROR_EXIT``; with ``MINC_LIGHTNING_DEBUG=1``
in the environment they raise it with its traceback. Any other exception is a bug, and keeps its
traceback.

Each class also derives from the built-in it refines, so ``except ValueError`` (or
``FileNotFoundError``, ``OSError``) still catches it in Python.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

USER_ERROR_EXIT = 2  # as for a command-line usage error
DEBUG = "MINC_LIGHTNING_DEBUG"  # set to 1: user errors show their traceback too


class UserError(Exception):
    """A mistake in what was given: its message names it and says what to do."""


class BadInput(UserError, ValueError):
    """A setting's value, or a file's content, breaks its rule."""


class MissingPath(UserError, FileNotFoundError):
    """A file or folder that was named does not exist."""


class IsAFolder(UserError, IsADirectoryError):
    """A folder where a file was expected."""


class BadCheckpoint(UserError, ValueError):
    """A checkpoint that cannot be read, or is not this package's."""


class ResumeRefused(UserError, ValueError):
    """A resume that would change a setting a resumed run cannot change."""


class NotWritable(UserError, PermissionError):
    """A folder the run must write to cannot be written."""


class NoSpace(UserError, OSError):
    """A write ran out of space."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return self.strerror


class Unreadable(UserError, OSError):
    """An input file (an image, a record) cannot be read."""


class Unreachable(UserError, ConnectionError):
    """A server that was named cannot be reached."""


class Diverged(UserError, FloatingPointError):
    """Training became non-finite: a setting (the learning rate, the precision) to change."""


class MissingExtra(UserError, ImportError):
    """An optional dependency the chosen setting needs is not installed."""


def out_of_space(error: BaseException) -> bool:
    """Whether ``error``, or an exception it was raised from, is "no space left on device"."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def one_line(error: BaseException) -> str:
    """The error's message on one line. An error re-raised from a DataLoader worker carries the
    worker's traceback in its text; its last line is the message."""
    text = str(error).strip()
    if "Original Traceback" in text:
        text = text.splitlines()[-1]
        for prefix in (f"{type(error).__module__}.{type(error).__qualname__}: ", ""):
            if prefix and text.startswith(prefix):
                text = text[len(prefix) :]
    return " ".join(text.split())


F = TypeVar("F", bound=Callable[..., Any])


def reports_user_errors(prog: str) -> Callable[[F], F]:
    """Decorate a command's ``main``: a ``UserError``, or a full disk, ends it with one line
    naming ``prog``, and exit ``USER_ERROR_EXIT``, unless ``MINC_LIGHTNING_DEBUG`` is set."""

    def decorate(main: F) -> F:
        @functools.wraps(main)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            try:
                return main(*args, **kwargs)
            except Exception as error:
                if not isinstance(error, UserError) and not out_of_space(error):
                    raise  # a bug: its traceback is what a report needs
                if os.environ.get(DEBUG, "") not in ("", "0"):
                    raise
                message = one_line(error).removeprefix(f"{prog}: ")
                if not isinstance(error, UserError):  # a full disk outside the package's writes
                    where = getattr(error, "filename", None)
                    message = f"no space left on device{f' writing {where}' if where else ''}"
                print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
                sys.exit(USER_ERROR_EXIT)

        return wrapped  # type: ignore[return-value]

    return decorate
