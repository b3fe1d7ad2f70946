"""Errors a person can act on: entry points print them as one line and exit non-zero."""


class UsageError(ValueError):
  """A bad flag value, an unknown name, an incompatible workdir, an input the model cannot take."""
