r"""Our ABX against libri-light's own tool, on the same features and items.

Two steps, two environments (the reference tool pins numpy < 2 and torch):

  # 1. project environment: an espeak-ng item set, log-mel features and
  #    K=64 one-hot codes as .npy, and our figures
  python benchmarks/abx_reference_compare.py ours --work_dir=/tmp/abxcmp

  # 2. a separate venv with ZeroSpeech's packaging of libri-light's ABX
  python -m venv /tmp/abxvenv && /tmp/abxvenv/bin/pip install \
    zerospeech-libriabx "numpy<2"
  /tmp/abxvenv/bin/python benchmarks/abx_reference_compare.py reference \
    --work_dir=/tmp/abxcmp

Step 2 runs libri-light's ``eval_ABX.ABX`` (cosine = angular distance, 25 Hz
frames) with group and X-speaker sampling switched off (``max_size_group``
and ``max_x_across`` 1000), as our implementation never samples; its
progress bar is replaced by a no-op because it miscounts the across-speaker
iterations in that setting and raises. Both steps print JSON.
"""

import argparse
import json
import os
import sys
import time


def ours(work_dir: str) -> None:
  import numpy as np  # pylint: disable=g-import-not-at-top
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))))
  from audiolm_t5x.pipelines.evaluation import abx  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.evaluation import espeak_items  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.tokenizers import base  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.tokenizers import kmeans  # pylint: disable=g-import-not-at-top

  built = espeak_items.build_item_set(os.path.join(work_dir, "espeak"))
  items = abx.read_items(built.item_file)
  emb = base.make_semantic_embedder("logmel")
  feats = {}
  for name in sorted({i.file for i in items}):
    wave, _ = sf.read(os.path.join(built.audio_dir, name + ".wav"),
                      dtype="float32")
    feats[name] = emb.embed(wave)
  book = kmeans.fit_codebook(np.concatenate(list(feats.values())), k=64,
                             seed=0)
  onehot = {k: np.eye(64, dtype=np.float32)[book.quantize(v)]
            for k, v in feats.items()}
  out = {}
  for label, data in (("logmel", feats), ("onehot64", onehot)):
    os.makedirs(os.path.join(work_dir, label), exist_ok=True)
    for k, v in data.items():
      np.save(os.path.join(work_dir, label, k + ".npy"), v)
    t = time.process_time()
    r = abx.abx_error_rates(data, items, rate=25.0, distance="angular")
    out[label] = {"within": r.within, "across": r.across,
                  "cpu_seconds": time.process_time() - t,
                  "items": r.num_items}
  print(json.dumps({"ours": out, "item_file": built.item_file}, indent=2))


def reference(work_dir: str) -> None:
  from libriabx.libri_light import eval_ABX  # pylint: disable=g-import-not-at-top
  from libriabx.libri_light.ABX_src import abx_group_computation  # pylint: disable=g-import-not-at-top
  from libriabx.libri_light.ABX_src import abx_iterators  # pylint: disable=g-import-not-at-top

  class _NoBar:

    def __init__(self, *args, **kwargs):
      pass

    def start(self):
      pass

    def update(self, *args):
      pass

    def finish(self):
      pass

  abx_group_computation.progressbar.ProgressBar = _NoBar
  abx_iterators.progressbar.ProgressBar = _NoBar
  item_file = os.path.join(work_dir, "espeak", "espeak.item")
  out = {}
  for label in ("logmel", "onehot64"):
    seq = eval_ABX.find_all_files(os.path.join(work_dir, label), ".npy")
    t = time.process_time()
    s = eval_ABX.ABX(eval_ABX.load_npy, item_file, seq, "cosine", 25.0,
                     ["within", "across"], cuda=False, max_x_across=1000,
                     max_size_group=1000)
    out[label] = {"within": s["within"], "across": s["across"],
                  "cpu_seconds": time.process_time() - t}
  print(json.dumps({"libri_light": out}, indent=2))


if __name__ == "__main__":
  parser = argparse.ArgumentParser(
      description=__doc__.splitlines()[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("side", choices=("ours", "reference"),
                      help="which implementation to run")
  parser.add_argument("--work_dir", default="/tmp/abxcmp",
                      help="where the item set and features are written")
  args = parser.parse_args()
  (ours if args.side == "ours" else reference)(args.work_dir)
