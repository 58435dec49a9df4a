r"""Peak memory of tokenizing one long recording, streamed vs whole-file.

Writes a synthetic Libri-Light-shaped recording of ``--minutes`` minutes
(16 kHz FLAC), then runs ``pipelines.tokenize_corpus`` on it twice in fresh
processes: with ``--stream_seconds=60`` (read in blocks, streaming
tokenizers) and with streaming disabled (whole waveform in memory). Prints
each run's peak resident memory and wall time, and checks that both wrote the
same tokens.

  python benchmarks/long_recording_bench.py --minutes=30
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import soundfile as sf

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from audiolm_t5x.pipelines import fit_kmeans  # noqa: E402
from audiolm_t5x.pipelines import sample_data  # noqa: E402

ASSETS = pathlib.Path(os.environ.get("AUDIOLM_ASSETS_DIR",
                                     ROOT.parent / "shared" / "assets"))


# VmHWM, not ru_maxrss: on Linux ru_maxrss survives exec, so a child would
# report the peak of the parent it was forked from.
_CHILD = ("import sys\n"
          "from audiolm_t5x.pipelines import tokenize_corpus\n"
          "tokenize_corpus.run(sys.argv[1:])\n"
          "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
          "print('PEAK_KIB', hwm[0].split()[1])")


def run_job(args: list[str]) -> tuple[float, float]:
  """Runs the job in a fresh process; returns (its peak RSS MiB, seconds)."""
  t = time.perf_counter()
  proc = subprocess.run([sys.executable, "-c", _CHILD, *args], cwd=ROOT,
                        check=True, capture_output=True, text=True)
  seconds = time.perf_counter() - t
  peak = [l for l in proc.stdout.splitlines() if l.startswith("PEAK_KIB")]
  return int(peak[-1].split()[1]) / 1024, seconds


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--minutes", type=float, default=30)
  args = parser.parse_args()
  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    book = tmp / "small" / "100" / "long_book"
    book.mkdir(parents=True)
    rng = np.random.default_rng(0)
    with sf.SoundFile(str(book / "recording.flac"), "w", 16000, 1,
                      format="FLAC", subtype="PCM_16") as f:
      for _ in range(int(args.minutes)):
        f.write(sample_data.synth_utterance(rng, 60.0)[:960000])
    fit_kmeans.run([f"--input_dir={tmp}", "--corpus=librilight",
                    f"--output={tmp / 'km.npz'}",
                    "--k=16", "--frames_per_file=500"])
    common = [f"--input_dir={tmp}", "--corpus=librilight",
              f"--kmeans={tmp / 'km.npz'}",
              f"--lyra_dir={ASSETS / 'lyra_soundstream'}", "--num_shards=1"]
    whole = run_job(common + [f"--output_dir={tmp / 'whole'}",
                              "--stream_seconds=1e9"])
    streamed = run_job(common + [f"--output_dir={tmp / 'streamed'}",
                                 "--stream_seconds=60"])
    same = all(
        open(a, "rb").read() == open(b, "rb").read()
        for a, b in zip(sorted(glob.glob(str(tmp / "whole/*/*.tfrecord"))),
                        sorted(glob.glob(str(tmp / "streamed/*/*.tfrecord")))))
  print(f"recording: {args.minutes:.0f} min "
        f"({args.minutes * 60 * 16000 * 4 / 2**20:.0f} MiB as float32)")
  print(f"whole-file: peak RSS {whole[0]:.0f} MiB, {whole[1]:.1f} s")
  print(f"streamed:   peak RSS {streamed[0]:.0f} MiB, {streamed[1]:.1f} s")
  print(f"identical records: {same}")


if __name__ == "__main__":
  main()
