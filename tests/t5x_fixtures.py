"""Session fixtures: the speech recipe on the team's clips, and the tiny T5X
checkpoints of its training stages, for any test.

Registered as a pytest plugin in ``tests/conftest.py``, so every test module
shares one recipe run (and one training run) per session::

  def test_something(tiny_checkpoints):
    tiny_checkpoints.semantic  # .../models/semantic/checkpoint_2

``speech_recipe`` runs ``recipes/librispeech/run.sh`` as a user runs it, over
released-style archives packed from the team's clips (a LibriSpeech-shaped
tree, with md5sum.txt): stages 0-4 (archives, codebook, tokens, report, SeqIO
cache of the semantic task), and where T5X is installed stages 5-7, which
train each stage's tiny model (``models/tiny.gin``) for :data:`TRAIN_STEPS`
steps with T5X's own ``t5x.train`` (stage 1 from the cache, 2 and 3 from the
records). ``tiny_checkpoints`` are those stages'
checkpoints: the recipe's training stages are what the generation and
evaluation tests consume. Skips where T5X is not installed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import os
import pathlib
import resource
import subprocess
import sys
import tarfile
import time

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
LIBRISPEECH_RECIPE = REPO_ROOT / "recipes" / "librispeech" / "run.sh"
HAVE_T5X = importlib.util.find_spec("t5x") is not None
NO_T5X = ("T5X is not installed (install it from github.com/google-research/"
          "t5x; see BUILD.md's training section)")
TRAIN_STEPS = 2
STAGES = ("semantic", "coarse", "fine")

# The recipe's config for the team's clips: tiny sizes, every value a knob of
# recipes/librispeech/config.sh. Stage 8 continues 1 s of each dev-clean
# prompt to 2 s (tests/test_recipes.py runs it).
TINY_CONFIG = """
SPLITS="dev-clean train-clean-100"
LOCAL_COPY={archives}
KMEANS_SPLITS="train-clean-100"
PROMPT_SPLIT="dev-clean"
KMEANS_K=16
KMEANS_FILE_FRACTION=1.0
ACOUSTIC_OPTIONS=(levels=24 pack=2)
LYRA_DIR={lyra_dir}
NUM_SHARDS=2
WORK_DIR={work}
BEAM_LOCAL_ARGS=()
CACHE_TASKS=audiolm_semantic_v001
CACHE_MIN_SHARDS=1
PYTHON={python}
MODEL_GINS=(models/tiny.gin)
"""
# Both recipes' tiny training and generation knobs (the piano's config ends
# with them too): TRAIN_STEPS steps of batch 2 without a validation pass, then
# 1 s prompts continued to 2 s.
TINY_TRAIN_CONFIG = f"""
TRAIN_STEPS={TRAIN_STEPS}
BATCH_SIZE=2
TRAIN_EXTRA_ARGS=(--gin.partitioning.PjitPartitioner.backend=None
                  --gin.RANDOM_SEED=0 --gin_file={{work}}/no_eval.gin)
PROMPT_SECONDS=1
CONTINUATION_SECONDS=2
GENERATE_EXTRA_ARGS=(--batch_size=2)
"""
# Test-only: no validation pass after the two training steps (T5X's train
# binary takes __main__'s configurables from a gin file, not from --gin
# bindings).
NO_EVAL_GIN = """
from __gin__ import dynamic_registration
import __main__ as train_script
train_script.train.train_eval_dataset_cfg = None
"""


def make_archives(tree: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
  """<split>.tar.gz as released (LibriSpeech/<split>/...) + md5sum.txt."""
  out.mkdir()
  lines = []
  for split in sorted(p.name for p in tree.iterdir()):
    path = out / f"{split}.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
      tar.add(tree / split, arcname=f"LibriSpeech/{split}")
    lines.append(f"{hashlib.md5(path.read_bytes()).hexdigest()}  {path.name}")
  (out / "md5sum.txt").write_text("\n".join(lines) + "\n")
  return out


def run_recipe(recipe: pathlib.Path, config: pathlib.Path, *args,
               timeout=1800) -> subprocess.CompletedProcess:
  """``bash RECIPE --config CONFIG ARGS`` on the CPU; prints its wall time."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", JAX_PLATFORMS="cpu",
             CUDA_VISIBLE_DEVICES="")
  start, cpu = time.monotonic(), _children_cpu()
  proc = subprocess.run(["bash", str(recipe), "--config", str(config), *args],
                        env=env, capture_output=True, text=True,
                        timeout=timeout, cwd=str(config.parent))
  print(f"\n{recipe.parent.name}/run.sh {' '.join(args)}: "
        f"{time.monotonic() - start:.0f} s wall, "
        f"{_children_cpu() - cpu:.0f} s CPU")
  return proc


def _children_cpu() -> float:
  usage = resource.getrusage(resource.RUSAGE_CHILDREN)
  return usage.ru_utime + usage.ru_stime


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


@pytest.fixture(scope="session")
def speech_recipe(tmp_path_factory, clips_dir, lyra_dir) -> dict:
  """The speech recipe's first run: stages 0-7 (0-4 without T5X).

  Returns ``work`` (markers, logs), ``data`` (codebook, tokens, report,
  cache, models), ``config``, ``proc`` (the run) and ``last`` (its last
  stage).
  """
  from tests import corpus_fixtures  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("recipe")
  tree = corpus_fixtures.build_tree(root / "LibriSpeech", clips_dir)
  archives = make_archives(tree, root / "archives")
  work = root / "work"
  work.mkdir()
  (work / "no_eval.gin").write_text(NO_EVAL_GIN)
  config = root / "tiny.sh"
  config.write_text((TINY_CONFIG + TINY_TRAIN_CONFIG).format(
      archives=archives, lyra_dir=lyra_dir, work=work, python=sys.executable))
  last = 7 if HAVE_T5X else 4
  proc = run_recipe(LIBRISPEECH_RECIPE, config, "--stop_stage", str(last))
  if proc.returncode:
    raise RuntimeError(f"run.sh --stop_stage {last} failed:\n"
                       f"{proc.stdout[-5000:]}\n{proc.stderr[-5000:]}")
  return dict(work=work, data=work / "data", config=config, proc=proc,
              last=last)


@pytest.fixture(scope="session")
def tiny_checkpoints(request) -> TinyCheckpoints:
  """The three tiny stages the speech recipe trained (stages 5-7).

  ``$AUDIOLM_TINY_CHECKPOINTS`` (a folder where an earlier session trained
  them: ``<folder>/<stage>/checkpoint_2`` and ``<folder>/tokens``, e.g. a
  recipe run's ``data/models`` beside a copy of its ``data/tokens``) skips
  the recipe, for quick reruns while developing.
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
  data = request.getfixturevalue("speech_recipe")["data"]
  paths = {s: str(data / "models" / s / f"checkpoint_{TRAIN_STEPS}")
           for s in STAGES}
  return TinyCheckpoints(**paths, data_dir=str(data / "tokens"))
