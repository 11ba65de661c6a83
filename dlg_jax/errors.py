"""The library's own error for input a user can fix.

`launch.py` prints a `ConfigError` as one line and exits with status 2;
every other exception is a bug and keeps its traceback. It subclasses
ValueError, so callers that catch bad values keep working.
"""


class ConfigError(ValueError):
  """A setting, flag or input file that the user can fix; the message says how."""


class MissingFileError(ConfigError, FileNotFoundError):
  """An input file or folder named by a setting is not there."""


def check_positive_int(name: str, value: object) -> None:
  """Raises a ConfigError unless the setting `name` is an integer >= 1 (a bool is not).

  >>> check_positive_int('server.bins', 0)
  Traceback (most recent call last):
  dlg_jax.errors.ConfigError: server.bins must be a positive integer, got 0.
  """
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ConfigError(f'{name} must be a positive integer, got {value!r}.')
