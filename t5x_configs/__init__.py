"""Gin files for T5X training and inference of the AudioLM stages.

Importable as ``audiolm_t5x.t5x_configs``; the gin files ship as package data.
The gin files ``include`` each other by paths relative to :data:`CONFIG_DIR`,
so T5X's binaries need it as a gin search path::

  python3 -m t5x.train --gin_search_paths=$(python3 -m audiolm_t5x.t5x_configs) \\
    --gin_file=train/semantic.gin --gin.MODEL_DIR="'/tmp/semantic'"

Layout (one concern per file, as in T5X):

- ``models/``: the network and optimizer (``audiolm_decoder.gin``, the paper's
  size) and size variants that override the network only (``tiny.gin``).
- ``runs/``: AudioLM's defaults on top of T5X's own run gins (``pretrain``,
  ``eval``, ``infer``).
- ``stages/``: each stage's data facts (task, feature lengths, vocabulary
  size, prefix-LM settings).
- ``train/``, ``infer/``: the experiments users launch; each includes a model,
  a run and a stage gin.
- ``partitioning/``: TPU v4-32 slice and GPU hosts.
"""

if __name__ == "t5x_configs":  # top-level name: one module
  import audiolm_t5x  # pylint: disable=g-import-not-at-top

  audiolm_t5x.alias_top_level(__name__, __file__)

import os

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))

STAGES = ("semantic", "coarse", "fine", "piano_semantic", "piano_acoustic")


def gin_path(relative: str) -> str:
  """Absolute path of a gin file given relative to :data:`CONFIG_DIR`."""
  path = os.path.join(CONFIG_DIR, relative)
  if not os.path.isfile(path):
    raise FileNotFoundError(
        f"no gin file {relative!r} under {CONFIG_DIR}; expected one of the "
        f"files under models/, runs/, stages/, train/, infer/, partitioning/")
  return path


def macro_value(gin_files, name: str, bindings=()):
  """The value gin files (and bindings) give the macro ``name``, or None.

  Reads the files with gin's own parser, following their ``include`` s under
  :data:`CONFIG_DIR` (or beside the including file), and imports nothing, so
  it works without T5X: e.g. the SeqIO task a stage gin samples::

    >>> macro_value([gin_path("infer/piano_acoustic.gin")],
    ...             "MIXTURE_OR_TASK_NAME")
    'audiolm_piano_acoustic_v001'

  The last binding wins, as in gin; includes that are not found here (T5X's
  own run gins) are skipped.
  """
  from gin import config_parser  # pylint: disable=g-import-not-at-top

  class _Delegate(config_parser.ParserDelegate):

    def configurable_reference(self, scoped_configurable_name, evaluate):
      return None

    def macro(self, macro_name):
      return None

  found = []

  def visit(parser, here):
    for statement in parser:
      if isinstance(statement, config_parser.IncludeStatement):
        for base in (CONFIG_DIR, here):
          path = os.path.join(base, statement.filename)
          if os.path.isfile(path):
            with open(path) as f:
              visit(config_parser.ConfigParser(f, _Delegate()),
                    os.path.dirname(path))
            break
      elif (isinstance(statement, config_parser.BindingStatement) and
            not statement.scope and not statement.arg_name and
            statement.selector == name):
        found.append(statement.value)

  for path in gin_files:
    with open(path) as f:
      visit(config_parser.ConfigParser(f, _Delegate()), os.path.dirname(path))
  for binding in bindings:
    visit(config_parser.ConfigParser(binding, _Delegate()), CONFIG_DIR)
  return found[-1] if found else None
