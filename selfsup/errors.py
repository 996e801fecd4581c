"""The error of a bad option, below every layer so that any module can raise it; the
command line prints it as one line and exits with 2."""


class ConfigError(ValueError):
    """An option has a value that is not allowed; the message names field, value and rule."""
