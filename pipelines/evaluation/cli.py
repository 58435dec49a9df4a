"""Command-line plumbing shared by the evaluation commands.

* :func:`user_errors`: a user error becomes one short message and exit code 2
  (the traceback only with ``--verbose``).
* :func:`pipeline_options`: Beam flags pass through; a flag neither the
  command nor Beam knows is an error; the DirectRunner is chosen when no
  runner is named (Beam's default, Prism, downloads a binary at start).
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Sequence

# Errors that mean "the user asked for something that cannot work".
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError)


@contextlib.contextmanager
def user_errors(parser: argparse.ArgumentParser, verbose: bool = False):
  """Turns a user error raised inside the block into ``parser.error``."""
  try:
    yield
  except USER_ERRORS as e:
    if verbose:
      raise
    parser.error(str(e))  # prints usage + one line, exits 2


def pipeline_options(parser: argparse.ArgumentParser,
                     beam_args: Sequence[str]) -> list[str]:
  """Beam's flags, checked; ``--runner=DirectRunner`` added when none given."""
  args = list(beam_args)
  # One parser of Beam's flags for every command (pipelines/options.py).
  from audiolm_t5x.pipelines import options as options_lib  # pylint: disable=g-import-not-at-top

  _, unknown = options_lib._beam_parser().parse_known_args(args)  # pylint: disable=protected-access
  if unknown:
    parser.error(f"unrecognized arguments: {' '.join(unknown)} (neither this "
                 "command's flags nor Beam pipeline options)")
  if not any(a == "--runner" or a.startswith("--runner=") for a in args):
    args.append("--runner=DirectRunner")
  return args
