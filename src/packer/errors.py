"""Every error a user can cause is a PackerError: one line that names the file and the fix.

The CLI prints ``str(error)`` and exits with ``error.exit_code``; nothing else reaches the user as a
traceback. Exit codes are stable and documented in docs/commands.md.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_PROBLEMS_FOUND = 1  # verify found damage; the command itself worked
EXIT_USAGE = 2  # bad arguments or options (also click/typer's own code)
EXIT_SOURCE = 3  # the input tree is missing, empty or has a bad file
EXIT_OUTPUT = 4  # the output exists, or cannot be written
EXIT_BAD_PACK = 5  # the pack is missing, damaged, or of an unknown version/backend
EXIT_PLUGIN = 6  # a backend plugin failed to load
EXIT_INTERRUPTED = 130  # Ctrl-C


class PackerError(Exception):
    """Base class. The message is the whole user-facing story: what, where, and how to fix it."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[type[PackerError], tuple[str]]:
        # Errors cross process boundaries (convert --workers); keep them picklable with one argument.
        return (type(self), (self.message,))


class UsageError(PackerError):
    """An option or argument is invalid."""

    exit_code = EXIT_USAGE


class SourceError(PackerError):
    """The source tree, or a file in it, cannot be packed."""

    exit_code = EXIT_SOURCE


class OutputError(PackerError):
    """The destination exists (without --force) or cannot be written."""

    exit_code = EXIT_OUTPUT


class PackError(PackerError):
    """A pack cannot be opened or read: missing files, damaged index, unknown version or backend."""

    exit_code = EXIT_BAD_PACK


class PluginError(PackerError):
    """A backend plugin is unknown or failed to import."""

    exit_code = EXIT_PLUGIN


class SampleDecodeError(PackError):
    """A stored sample does not decode; the message names the pack, the sample and its key."""


def require_extra(module: str, extra: str, feature: str) -> None:
    """Fail before any work if an optional dependency is missing or broken, with the exact command
    that installs it (``pip install 'packer[plot]'``, quoted for every shell).

    The module is imported, not only looked up: a broken install (a spec that is found, an import
    that fails) would otherwise run the whole command and end in a traceback.
    """
    import importlib

    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.partition(".")[0]:  # found, but one of its own imports is missing
            raise _broken(module, extra, feature, exc) from exc
        raise UsageError(f"{feature} needs {module}: pip install 'packer[{extra}]'") from None
    except Exception as exc:  # whatever a half-installed package raises while importing
        raise _broken(module, extra, feature, exc) from exc


def _broken(module: str, extra: str, feature: str, exc: Exception) -> UsageError:
    return UsageError(
        f"{feature} needs {module}, which is installed but does not import "
        f"({type(exc).__name__}: {exc}): pip install --force-reinstall 'packer[{extra}]'"
    )
