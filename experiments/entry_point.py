"""How every command-line entry point runs: a bad flag or input is one line on stderr and exit 2.

  entry_point.run(main)   # instead of absl's app.run(main)

Flag-parsing errors (an unknown or misspelt flag, a value its parser refuses) and the library's
`UsageError` (a value out of range, an unknown name, an incompatible workdir, an input the model
cannot take) print `error: <what and how to fix it>` and exit with status 2, without a traceback.
"""

import difflib
import sys

from absl import app, flags

from seq2seq_jax.errors import UsageError

USAGE_EXIT_CODE = 2


def fail(message: str) -> None:
  """Prints `error: message` on stderr and exits with USAGE_EXIT_CODE."""
  print(f"error: {message}", file=sys.stderr)
  sys.exit(USAGE_EXIT_CODE)


def _unknown_flag_hint(error: flags.Error) -> str:
  """' (did you mean --d_model?)' for an unknown flag close to a known one, else ''."""
  name = getattr(error, "flagname", None)
  if not name:
    return ""
  close = difflib.get_close_matches(name, list(flags.FLAGS), n=1)
  return f" (did you mean --{close[0]}?)" if close else ""


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parsing, with its errors as one line; positional arguments are refused."""
  try:
    rest = flags.FLAGS(argv)
  except flags.UnrecognizedFlagError as e:
    fail(f"unknown flag --{e.flagname}{_unknown_flag_hint(e)}; --help lists the flags")
  except flags.Error as e:
    fail(f"{e}; --help lists the flags")
  if len(rest) > 1:
    fail(f"unexpected arguments: {' '.join(rest[1:])} (flags are written --name=value)")
  return rest


def run(main) -> None:
  """Runs `main()` under absl with `parse_flags`; UsageError -> one line, exit 2."""

  def main_with_usage_errors(argv):
    del argv  # parse_flags has refused positional arguments
    try:
      main()
    except UsageError as e:
      fail(str(e))

  app.run(main_with_usage_errors, flags_parser=parse_flags)
