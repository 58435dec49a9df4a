"""A killed and resumed T5X run equals an uninterrupted one.

The tiny model of stage 1 (``audiolm_t5x.network`` through T5X's unchanged
``t5x.train``) on the tokenization job's records, with the run gins as they
ship (fixed seeds, the input iterator saved with every checkpoint):

1. a run is started as a real subprocess and killed (SIGKILL) as soon as a
   checkpoint after step 0 exists (step N, whatever it is at that moment);
2. the same command resumes it from MODEL_DIR to step N + 2;
3. a fresh run goes to step N + 2 without interruption.

The per-step training losses after step N and the final parameters and
optimizer state of 2 and 3 must be equal.
"""

import glob
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.t5x_fixtures import NO_EVAL_GIN
from tests.test_t5x_configs import (CONFIG_DIR, HAVE_T5X, NO_T5X, REPO_ROOT,  # pylint: disable=g-multiple-import
                                    _env)

pytestmark = pytest.mark.skipif(not HAVE_T5X, reason=NO_T5X)

# Every step its own summary (eval_period) and a checkpoint every 2 steps.
RESUME_GIN = NO_EVAL_GIN + """
from t5x import utils
train_script.train.eval_period = 1
utils.SaveCheckpointConfig.period = 2
"""


def _command(model_dir, steps, gin_file):
  return [sys.executable, "-m", "t5x.train",
          f"--gin_search_paths={CONFIG_DIR}",
          "--gin_file=train/semantic.gin", "--gin_file=models/tiny.gin",
          "--gin_file=partitioning/gpu.gin",
          "--gin.partitioning.PjitPartitioner.backend=None",
          "--gin.BATCH_SIZE=2", f"--gin_file={gin_file}",
          f"--gin.MODEL_DIR='{model_dir}'", f"--gin.TRAIN_STEPS={steps}"]


def _run(cmd, env, timeout=600):
  proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                        timeout=timeout, cwd=str(REPO_ROOT))
  log = proc.stdout + proc.stderr
  assert proc.returncode == 0, log[-5000:]
  return log


def _steps(model_dir):
  return sorted(int(m.group(1)) for p in model_dir.iterdir()
                if (m := re.fullmatch(r"checkpoint_(\d+)", p.name)))


def _losses(model_dir):
  """{step: training loss} from the TensorBoard events T5X wrote."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  losses = {}
  for path in sorted(glob.glob(str(model_dir / "train" / "events.*"))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == "loss":
          losses[event.step] = float(tf.make_ndarray(value.tensor))
  return losses


def _params(checkpoint):
  """Parameters and optimizer state of a T5X (Orbax) checkpoint, as leaves."""
  import warnings  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import orbax.checkpoint as ocp  # pylint: disable=g-import-not-at-top
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # sharding read from the checkpoint
    state = ocp.PyTreeCheckpointer().restore(str(checkpoint / "state"))
  return [(jax.tree_util.keystr(p), np.asarray(x))
          for p, x in jax.tree_util.tree_leaves_with_path(state)]


def test_killed_run_resumes_exactly(tokenized_dataset, tmp_path):
  env = _env(tokenized_dataset)
  gin_file = tmp_path / "resume.gin"
  gin_file.write_text(RESUME_GIN)
  killed = tmp_path / "killed"

  # 1. Start a long run, kill it once a checkpoint exists.
  log_path = tmp_path / "killed.log"
  with open(log_path, "w") as log_file:
    proc = subprocess.Popen(_command(killed, 1000, gin_file), env=env,
                            stdout=log_file, stderr=subprocess.STDOUT,
                            cwd=str(REPO_ROOT), start_new_session=True)
    deadline = time.monotonic() + 600
    try:
      while not (killed.is_dir() and any(_steps(killed))):  # step > 0
        assert proc.poll() is None, log_path.read_text()[-5000:]
        assert time.monotonic() < deadline, log_path.read_text()[-5000:]
        time.sleep(0.2)
    finally:
      if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
      proc.wait()
  n = _steps(killed)[-1]
  assert n < 1000

  # 2. Resume it to n + 2; 3. an uninterrupted run to n + 2.
  log = _run(_command(killed, n + 2, gin_file), env)
  assert "Initializing parameters from scratch" not in log, log[-3000:]
  fresh = tmp_path / "fresh"
  _run(_command(fresh, n + 2, gin_file), env)

  resumed_losses, fresh_losses = _losses(killed), _losses(fresh)
  after = [s for s in sorted(fresh_losses) if s > n]
  assert after, fresh_losses
  assert [resumed_losses.get(s) for s in after] == [fresh_losses[s]
                                                    for s in after]
  got = _params(killed / f"checkpoint_{n + 2}")
  want = _params(fresh / f"checkpoint_{n + 2}")
  assert [p for p, _ in got] == [p for p, _ in want]
  for (path, a), (_, b) in zip(got, want):
    np.testing.assert_array_equal(a, b, err_msg=str(path))
  # The run did train: parameters moved from checkpoint n.
  before = _params(killed / f"checkpoint_{n}")
  assert any(not np.array_equal(a, b) for (p, a), (_, b) in zip(before, got)
             if p.startswith("['target']"))
