r"""Throughput of the data report job on records of the paper's layout.

Writes ``--records`` synthetic records (random tokens, K = 1024, Q = 12,
N = 1024, ``--seconds`` each) through the data contract, runs the report job
on the DirectRunner (one process unless Beam flags say otherwise) and prints
records and audio-hours per wall second, and what that means for
LibriSpeech's 960 h and Libri-Light's 60k h at one core per worker.

::

  python benchmarks/report_bench.py --records=400 --seconds=15
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from audiolm_t5x import constants  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x import contract  # pylint: disable=wrong-import-position
from audiolm_t5x.pipelines import data_report  # pylint: disable=wrong-import-position


def write_dataset(root: str, *, records: int, seconds: float,
                  seed: int = 0) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  k, q, n = (constants.SEMANTIC_CODEBOOK_SIZE, constants.ACOUSTIC_LEVELS,
             constants.ACOUSTIC_CODEBOOK_SIZE)
  split = "train-clean-100"
  os.makedirs(os.path.join(root, split))
  samples = int(seconds * constants.SAMPLE_RATE)
  with tf.io.TFRecordWriter(os.path.join(
      root, split, contract.shard_name(split, 0, 1))) as w:
    for i in range(records):
      # Runs of 1-3 repeats, as k-means ids of speech have.
      sem = np.repeat(rng.integers(0, k, samples // 640),
                      rng.integers(1, 4, samples // 640))[:samples // 640]
      sem = np.pad(sem, (0, samples // 640 - sem.size), mode="edge")
      rec = contract.TokenRecord(
          id=f"{i}-0-0000", split=split, speaker_id=i % 50, chapter_id=i % 7,
          source="", transcript="", num_samples=samples, semantic_tokens=sem,
          acoustic_tokens=rng.integers(0, n, (samples // 320, q)))
      w.write(rec.to_example_bytes())
  info = contract.DatasetInfo(
      semantic={"name": "synthetic", "codebook_size": k, "rate_hz": 25,
                "fingerprint": "-"},
      acoustic={"name": "synthetic", "levels": q, "codebook_size": n,
                "rate_hz": 50, "fingerprint": "-"},
      splits={split: {"records": records}})
  with open(os.path.join(root, contract.DATASET_INFO_FILENAME), "w") as f:
    f.write(info.to_json())


def main() -> None:
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--records", type=int, default=400, help="records to write")
  p.add_argument("--seconds", type=float, default=15.0,
                 help="audio seconds per record")
  args, beam_args = p.parse_known_args()
  with tempfile.TemporaryDirectory() as tmp:
    write_dataset(tmp, records=args.records, seconds=args.seconds)
    start = time.monotonic()
    data_report.run([f"--data_dir={tmp}", f"--output_dir={tmp}/report",
                     *beam_args], out=open(os.devnull, "w"))
    wall = time.monotonic() - start
  hours = args.records * args.seconds / 3600
  print(f"report job: {args.records} records of {args.seconds:g} s "
        f"({hours:.2f} h, K=1024, Q=12, N=1024) in {wall:.1f} s wall "
        "(job start-up and plotting included)")
  print(f"  {args.records / wall:.1f} records/s, {hours / wall * 3600:.0f} "
        "audio-hours per wall hour")
  rate = hours / wall  # audio-hours per wall second
  for name, corpus_h in (("LibriSpeech 960 h", 960),
                         ("Libri-Light 60k h", 60_000)):
    print(f"  {name}: {corpus_h / rate / 3600:.2f} worker-hours at this rate")


if __name__ == "__main__":
  main()
