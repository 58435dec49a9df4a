"""Session-scoped tiny T5X checkpoints of the three stages, for any test.

Registered as a pytest plugin in ``tests/conftest.py``, so every test module
shares one training run per session::

  def test_something(tiny_checkpoints):
    tiny_checkpoints.semantic  # .../semantic/checkpoint_2

Each stage's tiny model (``models/tiny.gin``) is trained for
:data:`TRAIN_STEPS` steps by T5X's own ``t5x.train`` binary with the
project's ``train/<stage>.gin`` on the records the tokenization job wrote from
the team's clips (the ``tokenized_dataset`` fixture). Skips where T5X is not
installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import pathlib
import subprocess
import sys
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
HAVE_T5X = importlib.util.find_spec("t5x") is not None
NO_T5X = ("T5X is not installed (install it from github.com/google-research/"
          "t5x; see BUILD.md's training section)")
TRAIN_STEPS = 2
STAGES = ("semantic", "coarse", "fine")
# Size and run settings of the tiny models (as tests/test_t5x_configs.py).
TINY_FLAGS = ["--gin_file=models/tiny.gin", "--gin_file=partitioning/gpu.gin",
              "--gin.partitioning.PjitPartitioner.backend=None",
              "--gin.BATCH_SIZE=2", "--gin.RANDOM_SEED=0"]
# No validation pass after the short run (T5X's train binary takes
# __main__'s configurables from a gin file, not from --gin bindings).
NO_EVAL_GIN = """
from __gin__ import dynamic_registration
import __main__ as train_script
train_script.train.train_eval_dataset_cfg = None
"""


@dataclasses.dataclass(frozen=True)
class TinyCheckpoints:
  """Checkpoint directories of the three tiny stages, and how to load them."""

  semantic: str
  coarse: str
  fine: str
  data_dir: str
  gin_files: tuple = ("models/tiny.gin",)  # after infer/<stage>.gin

  def __getitem__(self, stage: str) -> str:
    return getattr(self, stage)


def _env(data_dir: pathlib.Path, extra: pathlib.Path) -> dict:
  env = dict(os.environ)
  env.update({
      "AUDIOLM_DATA_DIR": str(data_dir),
      "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(extra),
                                     env.get("PYTHONPATH", "")]),
      "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "",
      "TF_CPP_MIN_LOG_LEVEL": "3",
  })
  return env


def train_tiny(stage: str, data_dir: pathlib.Path, work: pathlib.Path,
               steps: int = TRAIN_STEPS) -> pathlib.Path:
  """Trains the tiny model of ``stage`` with ``t5x.train``; its checkpoint."""
  from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top
  model_dir = work / stage
  work.mkdir(parents=True, exist_ok=True)
  (work / "no_eval.gin").write_text(NO_EVAL_GIN)
  cmd = [sys.executable, "-m", "t5x.train",
         f"--gin_search_paths={t5x_configs.CONFIG_DIR}",
         f"--gin_file=train/{stage}.gin", *TINY_FLAGS,
         f"--gin_file={work / 'no_eval.gin'}",
         f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}"]
  start = time.monotonic()
  proc = subprocess.run(cmd, env=_env(data_dir, work), capture_output=True,
                        text=True, timeout=900, cwd=str(REPO_ROOT))
  print(f"\nt5x.train {stage}: {time.monotonic() - start:.0f} s")
  ckpt = model_dir / f"checkpoint_{steps}"
  if proc.returncode or not ckpt.is_dir():
    raise RuntimeError(f"{' '.join(cmd)} failed:\n"
                       f"{(proc.stdout + proc.stderr)[-6000:]}")
  return ckpt


@pytest.fixture(scope="session")
def tiny_checkpoints(request, tmp_path_factory) -> TinyCheckpoints:
  """The three tiny stages trained on the tokenization job's records.

  ``$AUDIOLM_TINY_CHECKPOINTS`` (a folder where an earlier session trained
  them: ``<folder>/<stage>/checkpoint_2`` and ``<folder>/tokens``) skips the
  training, for quick reruns while developing.
  """
  if not HAVE_T5X:
    pytest.skip(NO_T5X)
  reuse = os.environ.get("AUDIOLM_TINY_CHECKPOINTS")
  if reuse:
    root = pathlib.Path(reuse)
    paths = {s: str(root / s / f"checkpoint_{TRAIN_STEPS}") for s in STAGES}
    missing = [p for p in paths.values() if not pathlib.Path(p).is_dir()]
    if missing:
      raise FileNotFoundError(f"$AUDIOLM_TINY_CHECKPOINTS: {missing} missing")
    return TinyCheckpoints(**paths, data_dir=str(root / "tokens"))
  tokenized_dataset = request.getfixturevalue("tokenized_dataset")
  work = tmp_path_factory.mktemp("tiny_t5x")
  paths = {s: str(train_tiny(s, tokenized_dataset, work)) for s in STAGES}
  return TinyCheckpoints(**paths, data_dir=str(tokenized_dataset))
