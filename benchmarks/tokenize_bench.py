r"""Throughput of the tokenization job against a plain Python loop.

Prints audio seconds tokenized per wall second for:

* ``loop``: one process, for each file: decode, log-mel + k-means, Lyra;
* ``pipeline, 1 worker``: the tokenization job on the DirectRunner with one
  worker (in_memory), the same files and tokenizers, writing real shards;
* ``pipeline, N workers``: the DirectRunner in multi_processing mode.

Start-up is reported apart from the steady rate: each mode also runs on a
corpus of ``--startup_copies`` copies, and the difference between the two
runs gives the steady rate (audio seconds added / wall seconds added) and the
fixed cost (worker processes, imports, model loads, pipeline construction and
the final writes). The whole-run ratio (start-up included) is printed too,
with start-up's share of the wall time; use ``--copies`` large enough that
it is under 5%. The corpus is the team's LibriSpeech clips copied
``--copies`` times. Each process computes on one thread (BLAS and TF thread
counts set to 1). The load average is printed: on a shared machine, ratios
between modes measured within one run are what can be compared.

  python benchmarks/tokenize_bench.py --copies=80 --workers=2
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
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


def _cpu() -> tuple[float, float]:
  """CPU seconds (user + system) of this process and of its reaped child
  processes (the DirectRunner's workers)."""
  me = resource.getrusage(resource.RUSAGE_SELF)
  kids = resource.getrusage(resource.RUSAGE_CHILDREN)
  return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def _job(common: list[str], out: pathlib.Path, extra: list[str]) -> None:
  tokenize_corpus.run(common + [f"--output_dir={out}"] + extra)


def main() -> None:
  parser = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  parser.add_argument("--copies", type=int, default=80,
                      help="copies of the clips in the timed corpus")
  parser.add_argument("--startup_copies", type=int, default=2,
                      help="copies in the small corpus that measures "
                      "start-up")
  parser.add_argument("--workers", type=int, default=2,
                      help="DirectRunner workers in multi_processing mode")
  args = parser.parse_args()
  lyra_dir = str(ASSETS / "lyra_soundstream")
  load = os.getloadavg()
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    corpora = {}
    for name, copies in (("small", args.startup_copies),
                         ("big", args.copies)):
      paths = build_corpus(tmp / name, copies)
      corpora[name] = (paths, sum(
          audio.decode(p.read_bytes()).shape[0] for p in paths[:len(paths)
                                                              // copies])
          * copies / constants.SAMPLE_RATE)
    codebook = str(tmp / "km.npz")
    fit_kmeans.run([f"--input_dir={tmp / 'small'}", f"--output={codebook}",
                    "--k=64", "--file_fraction=0.5"])
    modes = [
        ("loop (1 process)", None),
        ("pipeline, 1 worker", ["--direct_num_workers=1"]),
        (f"pipeline, {args.workers} workers (multi_processing)",
         ["--direct_running_mode=multi_processing",
          f"--direct_num_workers={args.workers}"]),
    ]
    rows = []
    for label, extra in modes:
      walls, cpus = {}, {}
      for name in ("small", "big"):
        paths, _ = corpora[name]
        t = time.perf_counter()
        cpu0 = _cpu()
        if extra is None:
          loop(paths, codebook, lyra_dir)
        else:
          common = [f"--input_dir={tmp / name}", f"--kmeans={codebook}",
                    f"--lyra_dir={lyra_dir}", "--num_shards=8"]
          _job(common, tmp / f"out-{len(rows)}-{name}", extra)
        walls[name] = time.perf_counter() - t
        cpus[name] = [b - a for a, b in zip(cpu0, _cpu())]
      (_, small_s), (_, big_s) = corpora["small"], corpora["big"]
      steady = (big_s - small_s) / (walls["big"] - walls["small"])
      startup = max(0.0, walls["small"] - small_s / steady)
      # CPU seconds per audio second in the steady part (this process, its
      # workers): on idle cores, N workers reach N x the loop's rate only if
      # this stays the loop's.
      steady_cpu = [(b - a) / (big_s - small_s)
                    for a, b in zip(cpus["small"], cpus["big"])]
      rows.append((label, big_s / walls["big"], steady, startup,
                   walls["big"], steady_cpu))
  files, secs = len(corpora["big"][0]), corpora["big"][1]
  print(f"\n{files} files, {secs:.0f} s of audio (start-up measured on "
        f"{len(corpora['small'][0])} files); {os.cpu_count()} CPU cores, load "
        f"average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
  print(f"{'mode':45s} {'whole run':>10} {'steady':>8} {'start-up':>9} "
        f"{'share':>6}  {'ratio to loop':>13}  CPU s per audio s "
        "(main + workers)")
  base_whole, base_steady = rows[0][1], rows[0][2]
  for label, whole, steady, startup, wall, cpu in rows:
    print(f"{label:45s} {whole:10.1f} {steady:8.1f} {startup:8.1f}s "
          f"{100 * startup / wall:5.1f}%  {whole / base_whole:5.2f} / "
          f"{steady / base_steady:5.2f}  {cpu[0]:.4f} + {cpu[1]:.4f}")
  print("(audio s per wall s; ratio: whole run / steady; start-up: the fixed "
        "cost of a run; CPU: steady part, this process + reaped workers)")
  print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
  main()
