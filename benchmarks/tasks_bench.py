"""Input-pipeline throughput of the AudioLM SeqIO tasks, per CPU core.

Writes a synthetic token dataset in the contract's format (paper layout:
K = 1024, Q = 12, N = 1024; semantic tokens in runs so that deduplication has
work to do), pins the process to one CPU core, and times each stage's task
(read + parse + every preprocessor, no cache) for ``--seconds`` each. Prints
examples/s and tokens/s (inputs + targets) per core beside what the paper's
training consumes: batch 256 per step on 16 TPU v4 chips at an assumed step
rate (derived from ``--mfu`` of the chips' bf16 peak and the model's FLOPs per
token, or given with ``--steps_per_second``).

Usage::

  python benchmarks/tasks_bench.py --records=256 --seconds=15
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

# Run from a source checkout without installing: the repository root.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_synthetic(root: str, *, records: int, min_s: float, max_s: float,
                    mean_run: float, seed: int) -> float:
  """Writes ``records`` contract records (train + dev); returns audio hours."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from audiolm_t5x import constants, contract  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines import integrity  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(seed)
  k, q, n = (constants.SEMANTIC_CODEBOOK_SIZE, constants.ACOUSTIC_LEVELS,
             constants.ACOUSTIC_CODEBOOK_SIZE)
  total = 0
  counts = {}
  for split, count in (("train-clean-100", records), ("dev-clean", 4)):
    os.makedirs(os.path.join(root, split))
    writers = [tf.io.TFRecordWriter(os.path.join(
        root, split, contract.shard_name(split, i, 4))) for i in range(4)]
    for i in range(count):
      ns = int(rng.uniform(min_s, max_s) * constants.SAMPLE_RATE)
      t_s = ns // constants.SEMANTIC_FRAME_SAMPLES
      runs = rng.geometric(1.0 / mean_run, size=t_s)
      sem = np.repeat(rng.integers(0, k, size=t_s), runs)[:t_s]
      rec = contract.TokenRecord(
          id=f"{split}-{i}", split=split, speaker_id=0, chapter_id=0,
          source="synthetic", transcript="", num_samples=ns,
          semantic_tokens=sem,
          acoustic_tokens=rng.integers(
              0, n, size=(ns // constants.ACOUSTIC_FRAME_SAMPLES, q)))
      writers[i % 4].write(rec.to_example_bytes())
      total += ns
    for i, w in enumerate(writers):
      w.close()
      integrity.write_manifest(  # readers read committed shards only
          os.path.join(root, split, contract.shard_name(split, i, 4)),
          split=split, shard=i, num_shards=4)
    counts[split] = {"records": count}
  info = contract.DatasetInfo(
      semantic={"name": "synthetic", "fingerprint": "-", "codebook_size": k,
                "rate_hz": constants.SEMANTIC_RATE_HZ},
      acoustic={"name": "synthetic", "fingerprint": "-", "levels": q,
                "codebook_size": n, "rate_hz": constants.ACOUSTIC_RATE_HZ},
      splits=counts, command=" ".join(sys.argv))
  with open(os.path.join(root, contract.DATASET_INFO_FILENAME), "w") as f:
    f.write(info.to_json())
  return total / constants.SAMPLE_RATE / 3600


def flops_per_token(seq_len: int, vocab: int) -> float:
  """Training FLOPs per token: 6 x params + attention (12 L d T)."""
  from audiolm_t5x import constants as c  # pylint: disable=g-import-not-at-top
  params = c.NUM_LAYERS * (4 * c.D_MODEL**2 + 2 * c.D_MODEL * c.D_FF)
  params += vocab * c.D_MODEL
  return 6 * params + 12 * c.NUM_LAYERS * c.D_MODEL * seq_len


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--records", type=int, default=256)
  parser.add_argument("--min_record_seconds", type=float, default=10.0)
  parser.add_argument("--max_record_seconds", type=float, default=35.0)
  parser.add_argument("--mean_semantic_run", type=float, default=1.8,
                      help="mean run length of repeated semantic tokens")
  parser.add_argument("--seconds", type=float, default=15.0,
                      help="timed seconds per stage")
  parser.add_argument("--core", type=int, default=0, help="CPU core to pin")
  parser.add_argument("--mfu", type=float, default=0.4,
                      help="assumed model FLOPs utilisation on TPU v4")
  parser.add_argument("--tpu_v4_peak_tflops", type=float, default=275.0)
  parser.add_argument("--steps_per_second", type=float, default=None,
                      help="assumed step rate (overrides --mfu)")
  parser.add_argument("--stages", default="semantic,coarse,fine")
  args = parser.parse_args(argv)

  os.sched_setaffinity(0, {args.core})  # one core: figures are per core
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.threading.set_inter_op_parallelism_threads(1)
  tf.config.threading.set_intra_op_parallelism_threads(1)
  import seqio  # pylint: disable=g-import-not-at-top
  from audiolm_t5x import constants  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.tasks import audiolm  # pylint: disable=g-import-not-at-top

  names = {"semantic": audiolm.SEMANTIC_TASK, "coarse": audiolm.COARSE_TASK,
           "fine": audiolm.FINE_TASK}
  with tempfile.TemporaryDirectory() as root:
    hours = write_synthetic(root, records=args.records,
                            min_s=args.min_record_seconds,
                            max_s=args.max_record_seconds,
                            mean_run=args.mean_semantic_run, seed=0)
    os.environ["AUDIOLM_DATA_DIR"] = root
    print(f"synthetic data: {args.records} records, {hours * 3600:.0f} s of "
          f"audio ({args.min_record_seconds:g}-{args.max_record_seconds:g} s "
          f"each), paper layout; pinned to core {args.core}, TF 1 thread")
    print(f"paper: batch {constants.BATCH_SIZE} per step on "
          f"{constants.TPU_V4_CHIPS} TPU v4 chips; step rate "
          + (f"{args.steps_per_second:g}/s (given)" if args.steps_per_second
             else f"from {args.mfu:.0%} MFU of {args.tpu_v4_peak_tflops:g} "
                  "TFLOP/s bf16 per chip, FLOPs/token = 6 N + 12 L d T"))
    header = (f"{'stage':9} {'ex/s/core':>10} {'tok/s/core':>11} "
              f"{'tok/ex':>7} {'step/s':>7} {'need ex/s':>10} "
              f"{'need tok/s':>11} {'cores':>6}")
    print(header)
    for stage in args.stages.split(","):
      name = names[stage]
      lengths = audiolm.TASK_FEATURE_LENGTHS[name]
      seq_len = sum(lengths.values())
      ds = seqio.get_mixture_or_task(name).get_dataset(
          lengths, split="train", shuffle=True, seed=0, num_epochs=None)
      options = tf.data.Options()
      options.threading.private_threadpool_size = 1
      ds = ds.with_options(options)
      it = ds.as_numpy_iterator()
      for _ in range(20):  # warm up (graph tracing, file open)
        next(it)
      n_ex = n_tok = 0
      start = time.perf_counter()
      while time.perf_counter() - start < args.seconds:
        ex = next(it)
        n_ex += 1
        n_tok += sum(len(v) for v in ex.values())
      elapsed = time.perf_counter() - start
      ex_rate, tok_rate = n_ex / elapsed, n_tok / elapsed
      if args.steps_per_second:
        steps = args.steps_per_second
      else:
        peak = args.tpu_v4_peak_tflops * 1e12 * constants.TPU_V4_CHIPS
        vocab = audiolm.VOCAB_SIZES[name]
        steps = args.mfu * peak / (flops_per_token(seq_len, vocab) *
                                   constants.BATCH_SIZE * seq_len)
      need_ex = steps * constants.BATCH_SIZE
      need_tok = need_ex * n_tok / n_ex
      print(f"{stage:9} {ex_rate:10.1f} {tok_rate:11.0f} {n_tok / n_ex:7.0f} "
            f"{steps:7.2f} {need_ex:10.0f} {need_tok:11.0f} "
            f"{need_ex / ex_rate:6.1f}")
    print("cores = CPU cores the input pipeline needs to feed the 16 chips "
          "(need ex/s over ex/s/core); tok/ex counts unpadded inputs+targets")
  return 0


if __name__ == "__main__":
  sys.exit(main())
