"""User-facing errors: raised for bad input anywhere in ``lib``, printed as one line by the entry scripts."""


class UserError(Exception):
    """Bad input from the user (missing file, wrong format, bad option). The message is one line that says
    what is wrong and how to fix it (a list, such as the missing files, adds one indented line per item);
    entry scripts print it and exit with status 2."""

    exit_code = 2


class ConfigError(UserError):
    """A config file, override or config value that cannot be used."""
