"""The library's own error for input a user can fix.

`launch.py` prints a `ConfigError` as one line and exits with status 2;
every other exception is a bug and keeps its traceback. It subclasses
ValueError, so callers that catch bad values keep working.
"""


class ConfigError(ValueError):
  """A setting, flag or input file that the user can fix; the message says how."""


class MissingFileError(ConfigError, FileNotFoundError):
  """An input file or folder named by a setting is not there."""
