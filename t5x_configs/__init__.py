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
