"""The errors the command line prints as one line (exit code 2), below every layer so that
any module can raise them, and so that the CLI catches them without importing the modules
that raise them. Each is also importable where it is raised (``selfsup.data.DataError``,
``selfsup.train.checkpoint.CheckpointError``, ``selfsup.train.module.DivergenceError``)."""


class ConfigError(ValueError):
    """An option has a value that is not allowed; the message names field, value and rule."""


class DataError(ValueError):
    """A data source cannot be used; the message names the file and the problem."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or not in selfsup's format."""


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite."""


class Interrupted(RuntimeError):
    """Training was stopped by a signal (SIGTERM, SIGINT); the message names the last good
    checkpoint and how to resume. ``exit_code`` is the shell's for that signal (128 + its number)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


ONE_LINE = (ConfigError, DataError, CheckpointError, DivergenceError)
