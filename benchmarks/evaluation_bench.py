r"""Cost of each evaluation metric: CPU seconds per hour of audio, one thread.

Runs each metric on the team's real LibriSpeech clips (85 s, six utterances)
with every math library held to one thread, and reports the process CPU time
(not wall time, which other processes on a shared machine inflate) per hour of
audio, and the real-time factor on one core::

  python benchmarks/evaluation_bench.py [--clips_dir=../shared/assets/librispeech_clips]

Metrics timed (each on every clip, split at 3 s into prompt / continuation):

* ``asr_pocketsphinx``: PocketSphinx transcription of the whole clip.
* ``speaker_resemblyzer``: Resemblyzer embeddings of prompt and continuation.
* ``acoustic``: level, silence ratio and repetition check.
* ``detector_features``: 1 s crops -> log-mel (the detector's input).
* ``detector_inference``: the detector (width 32, random weights: speed only)
  on those crops.
* ``wer``: jiwer on the recogniser's output (text only; negligible).

Model loading is timed apart (``load``). Not timed here: LM scoring, whose
cost is the stage-1 model's forward pass (see BUILD.md, training throughput).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
             "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
  os.environ[_var] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from audiolm_t5x import constants  # noqa: E402


def _cpu(fn, *args):
  start = time.process_time()
  out = fn(*args)
  return time.process_time() - start, out


def main(argv=None) -> None:
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--clips_dir", default=os.path.join(
      os.environ.get("AUDIOLM_ASSETS_DIR", str(REPO.parent / "shared" /
                                               "assets")),
      "librispeech_clips"), help="folder of 16 kHz audio clips")
  p.add_argument("--prompt_seconds", type=float,
                 default=constants.PROMPT_SECONDS,
                 help="split point of each clip into prompt / continuation")
  args = p.parse_args(argv)

  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top

  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  torch.set_num_threads(1)

  from audiolm_t5x.pipelines.evaluation import acoustic  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.evaluation import asr  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.evaluation import detector  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines.evaluation import speaker  # pylint: disable=g-import-not-at-top

  paths = sorted(pathlib.Path(args.clips_dir).glob("*.flac"))
  if not paths:
    p.error(f"no .flac files in {args.clips_dir}")
  waves = [sf.read(str(x), dtype="float32")[0] for x in paths]
  audio_s = sum(len(w) for w in waves) / constants.SAMPLE_RATE
  cut = int(args.prompt_seconds * constants.SAMPLE_RATE)

  rec = asr.make_recognizer("pocketsphinx")
  emb = speaker.make_embedder("resemblyzer")
  load_rec, _ = _cpu(rec.load)
  load_emb, _ = _cpu(emb.load)
  emb.embed(waves[0][:cut])  # first call compiles / warms caches
  model = detector.build_model(width=32)
  model.predict(np.zeros([1, 98, detector.NUM_MELS, 1], np.float32),
                verbose=0)

  cpu = {k: 0.0 for k in ("asr_pocketsphinx", "speaker_resemblyzer",
                          "acoustic", "detector_features",
                          "detector_inference", "wer")}
  texts = []
  for w in waves:
    t, text = _cpu(rec.transcribe, w)
    cpu["asr_pocketsphinx"] += t
    texts.append(text)
    t, _ = _cpu(lambda: (emb.embed(w[:cut]), emb.embed(w[cut:])))
    cpu["speaker_resemblyzer"] += t
    t, _ = _cpu(acoustic.consistency, w[:cut], w[cut:])
    cpu["acoustic"] += t
    t, feats = _cpu(lambda: detector.log_mel(detector.crops(w)))
    cpu["detector_features"] += t
    t, _ = _cpu(lambda: model.predict(feats, batch_size=64, verbose=0))
    cpu["detector_inference"] += t
  t, _ = _cpu(asr.error_rates, texts, texts[::-1])
  cpu["wer"] += t

  print(f"audio: {len(waves)} clips, {audio_s:.1f} s; one thread; CPU time "
        f"of this process (load average {os.getloadavg()[0]:.1f})")
  print(f"load: pocketsphinx {load_rec:.1f} s, resemblyzer {load_emb:.1f} s "
        "CPU")
  print("| metric | CPU s per audio hour | real-time factor (1 core) |")
  print("|---|---|---|")
  for k, v in cpu.items():
    per_hour = v / audio_s * 3600.0
    rtf = audio_s / v if v > 0 else float("inf")
    print(f"| {k} | {per_hour:,.0f} | {rtf:,.1f}x |")


if __name__ == "__main__":
  main()
