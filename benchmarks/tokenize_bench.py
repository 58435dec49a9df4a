r"""Throughput of the tokenization job against a plain Python loop.

Prints audio seconds tokenized per wall second for:

* ``loop``: one process, for each file: decode, log-mel + k-means, Lyra;
* ``pipeline, 1 worker``: ``pipelines.tokenize_corpus`` on the DirectRunner with one
  worker (in_memory), the same files and tokenizers, writing real shards;
* ``pipeline, N workers``: the DirectRunner in multi_processing mode.

and the pipeline / loop ratios (targets: >= 0.9 with one worker, > 1 with
two). The corpus is the team's LibriSpeech clips copied ``--copies`` times.
Each process computes on one thread (BLAS and TF thread counts set to 1).

  python benchmarks/tokenize_bench.py --copies=20 --workers=2
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time

# One compute thread per process (BLAS, TF), so that "one worker" means one
# core and the loop and the workers are compared core for core. Set before
# numpy / TF load; the DirectRunner's worker processes inherit it.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
  os.environ.setdefault(_var, "1")

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from audiolm_t5x import constants  # noqa: E402
from audiolm_t5x.pipelines import audio  # noqa: E402
from audiolm_t5x.pipelines import fit_kmeans  # noqa: E402
from audiolm_t5x.pipelines import tokenize_corpus  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import base  # noqa: E402
from audiolm_t5x.pipelines.tokenizers import kmeans  # noqa: E402

ASSETS = pathlib.Path(os.environ.get(
    "AUDIOLM_ASSETS_DIR",
    pathlib.Path(__file__).resolve().parent.parent.parent / "shared" /
    "assets"))


def build_corpus(root: pathlib.Path, copies: int) -> list[pathlib.Path]:
  clips = sorted((ASSETS / "librispeech_clips").glob("*.flac"))
  paths = []
  for c in range(copies):
    speaker, chapter = str(8000 + c), "1"
    d = root / "train-clean-100" / speaker / chapter
    d.mkdir(parents=True)
    lines = []
    for i, clip in enumerate(clips):
      utt = f"{speaker}-{chapter}-{i:04d}"
      (d / f"{utt}.flac").write_bytes(clip.read_bytes())
      lines.append(f"{utt} PLACEHOLDER")
      paths.append(d / f"{utt}.flac")
    (d / f"{speaker}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
  return paths


def loop(paths, codebook: str, lyra_dir: str) -> float:
  sem = base.make_semantic_embedder("logmel")
  ac = base.make_acoustic_tokenizer("lyra", model_dir=lyra_dir)
  sem.load()
  ac.load()
  book = kmeans.KMeansCodebook.load(codebook)
  seconds = 0.0
  for p in paths:
    wave = audio.decode(p.read_bytes())
    book.quantize(sem.embed(wave))
    ac.encode(wave)
    seconds += wave.shape[0] / constants.SAMPLE_RATE
  return seconds


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--copies", type=int, default=20)
  parser.add_argument("--workers", type=int, default=2)
  args = parser.parse_args()
  lyra_dir = str(ASSETS / "lyra_soundstream")
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    paths = build_corpus(tmp / "corpus", args.copies)
    codebook = str(tmp / "km.npz")
    fit_kmeans.run([f"--input_dir={tmp / 'corpus'}", f"--output={codebook}",
                    "--k=64", "--file_fraction=0.2"])
    rows = []
    t = time.perf_counter()
    secs = loop(paths, codebook, lyra_dir)
    rows.append(("loop (1 process)", secs / (time.perf_counter() - t)))
    common = [f"--input_dir={tmp / 'corpus'}", f"--kmeans={codebook}",
              f"--lyra_dir={lyra_dir}", "--num_shards=8"]
    t = time.perf_counter()
    tokenize_corpus.run(common + [f"--output_dir={tmp / 'out1'}",
                           "--direct_num_workers=1"])
    rows.append(("pipeline, 1 worker", secs / (time.perf_counter() - t)))
    t = time.perf_counter()
    tokenize_corpus.run(common + [f"--output_dir={tmp / 'out2'}",
                           "--direct_running_mode=multi_processing",
                           f"--direct_num_workers={args.workers}"])
    rows.append((f"pipeline, {args.workers} workers (multi_processing)",
                 secs / (time.perf_counter() - t)))
  print(f"\n{len(paths)} files, {secs:.0f} s of audio, "
        f"{os.cpu_count()} CPU cores")
  base_rate = rows[0][1]
  for name, rate in rows:
    print(f"{name:45s} {rate:8.1f} audio s / wall s   "
          f"ratio to loop {rate / base_rate:.2f}")


if __name__ == "__main__":
  main()
