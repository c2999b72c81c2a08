"""User-facing errors: the CLI prints their message on one line and exits 2, without a traceback."""


class UserError(Exception):
    """A mistake the user can fix (bad name, bad value, missing file); the message says how."""


class ConfigError(UserError):
    """An unknown configuration key, a value of the wrong type, or an unknown name."""


class CorruptDataError(UserError):
    """A dataset file is on disk but damaged (truncated, wrong format); the message names it and the fix."""


class MissingDataError(UserError):
    """A dataset's files are not on disk; the message names them and says how to prepare them."""


class RunFailed(Exception):
    """A run that ended without a result, for a reason its record keeps (``FAILED: <message>``); the
    CLI prints the message on one line and exits 1."""


class Diverged(RunFailed):
    """A non-finite training loss or evaluation metric: the run's numbers are not a result."""


def closest(name: str, valid: list[str]) -> str | None:
    """The valid name closest to a mistyped ``name``, or None when none is close (difflib's ratio >= 0.6)."""
    import difflib

    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(name: str, valid: list[str]) -> str:
    """``" (did you mean 'x'?)"`` for the valid name closest to ``name``; empty when none is close."""
    match = closest(name, valid)
    return f" (did you mean {match!r}?)" if match else ""
