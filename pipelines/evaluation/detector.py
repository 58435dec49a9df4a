r"""Synthetic-speech detector: a convolutional classifier of 1 s log-mel crops.

AudioLM (Section 6) trains a convolutional classifier on 1 s crops of
LibriSpeech train-clean-100 originals against AudioLM continuations of
prompts from the same set, scores longer audio by combining the crop
predictions, and reports 98.6% accuracy on a balanced set. This module builds
the same experiment with Keras on TensorFlow:

* **Data**: real clips (label 0) from ``--real`` (any audio folder; the
  speaker is the first ``-``-separated field of a LibriSpeech-style name, or
  the parent folder); synthetic clips (label 1) of one or more *kinds*: the
  generation job's output (kind ``generated``: only the audio *after*
  ``prompt_seconds``, since the prompt is real audio) and/or codec
  resyntheses (kind ``codec``, a plain audio folder, e.g. made with
  :func:`write_codec_resyntheses`). Kinds are reported separately: a detector
  that only finds codec artefacts is not the paper's detector.
* **Split**: speaker-disjoint. Speakers are ordered by a hash of their id and
  the first ``ceil(test_fraction * speakers)`` are the test speakers (a
  synthetic clip belongs to its prompt's speaker).
* **Input**: non-overlapping 1 s crops (``constants.DETECTOR_CROP_SECONDS``)
  -> 64-bin log-mel (25 ms window, 10 ms hop) -> [98, 64, 1].
* **Model**: 3 Conv2D-BatchNorm-ReLU-MaxPool blocks, global average pooling,
  a sigmoid unit. Trained with Adam on balanced class weights.
* **Evaluation**: per kind, a balanced test set (the larger class is
  subsampled in hash order to the smaller one's size); per-clip score = mean
  of its crops' probabilities; accuracy at 0.5, confusion matrix, ROC AUC, and
  a ROC curve PNG with one curve per kind; crop-level accuracy as well.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import math
import os
from typing import Optional, Sequence

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines import options as options_lib

MODULE = "audiolm_t5x.pipelines.train_detector"

AUDIO_EXTENSIONS = (".flac", ".wav", ".ogg", ".mp3")
REAL, SYNTHETIC = 0, 1
GENERATED, CODEC = "generated", "codec"
NUM_MELS = 64
CROP = int(constants.DETECTOR_CROP_SECONDS * constants.SAMPLE_RATE)


@dataclasses.dataclass(frozen=True)
class Clip:
  """One audio clip of the detector's data."""

  path: str
  label: int  # REAL or SYNTHETIC
  kind: str  # "real", "generated", "codec"
  speaker: str
  start_seconds: float = 0.0  # crops start here (after a prompt)


def _stable_hash(text: str) -> int:
  return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


def speaker_of(path: str) -> str:
  """LibriSpeech ``<spk>-<chapter>-<utt>.flac`` -> spk; else the folder."""
  stem = os.path.splitext(os.path.basename(path))[0]
  parts = stem.split("-")
  if len(parts) >= 3 and parts[0].isdigit():
    return parts[0]
  return os.path.basename(os.path.dirname(path))


def list_audio(folder: str, *, label: int, kind: str) -> list[Clip]:
  """Every audio file under ``folder`` (recursive), sorted."""
  if not os.path.isdir(folder):
    raise NotADirectoryError(f"{folder} is not a folder of audio files")
  paths = sorted(p for p in glob.glob(os.path.join(folder, "**", "*"),
                                      recursive=True)
                 if p.lower().endswith(AUDIO_EXTENSIONS))
  if not paths:
    raise FileNotFoundError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) "
                            f"under {folder}")
  return [Clip(p, label, kind, speaker_of(p)) for p in paths]


def list_generated(folder: str) -> list[Clip]:
  """Continuation parts of the generation job's samples (kind ``generated``)."""
  metas = sorted(glob.glob(os.path.join(folder, "*", "sample-*.json")))
  if not metas:
    raise FileNotFoundError(f"no <prompt_id>/sample-<k>.json under {folder} "
                            "(the generation job's layout)")
  clips = []
  for m in metas:
    with open(m) as f:
      meta = json.load(f)
    clips.append(Clip(m[:-len(".json")] + ".wav", SYNTHETIC, GENERATED,
                      str(meta["speaker_id"]),
                      float(meta["prompt_seconds"])))
  return clips


def split_speakers(clips: Sequence[Clip], *, test_fraction: float
                   ) -> tuple[list[Clip], list[Clip]]:
  """Speaker-disjoint (train, test); ValueError if either side is empty."""
  speakers = sorted({c.speaker for c in clips}, key=lambda s: (_stable_hash(s),
                                                              s))
  if len(speakers) < 2:
    raise ValueError(f"a speaker-disjoint split needs at least 2 speakers, "
                     f"found {len(speakers)}")
  n_test = min(len(speakers) - 1, max(1, math.ceil(test_fraction *
                                                   len(speakers))))
  test = set(speakers[:n_test])
  return ([c for c in clips if c.speaker not in test],
          [c for c in clips if c.speaker in test])


# --- Features ------------------------------------------------------------------
def load_waveform(clip: Clip) -> np.ndarray:
  from audiolm_t5x.pipelines import audio  # pylint: disable=g-import-not-at-top

  with open(clip.path, "rb") as f:
    wave = audio.decode(f.read())
  return wave[int(round(clip.start_seconds * constants.SAMPLE_RATE)):]


def crops(waveform: np.ndarray) -> np.ndarray:
  """Non-overlapping 1 s crops, [n, 16000] (a tail under 1 s is dropped)."""
  n = len(waveform) // CROP
  return waveform[:n * CROP].reshape(n, CROP).astype(np.float32)


def log_mel(batch: np.ndarray) -> np.ndarray:
  """[n, 16000] -> [n, 98, 64, 1] log-mel (tf.signal)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  stft = tf.signal.stft(tf.convert_to_tensor(batch), frame_length=400,
                        frame_step=160, fft_length=512)
  mel = tf.signal.linear_to_mel_weight_matrix(
      NUM_MELS, 257, constants.SAMPLE_RATE, 20.0, constants.SAMPLE_RATE / 2)
  feats = tf.math.log(tf.tensordot(tf.abs(stft) ** 2, mel, 1) + 1e-6)
  return feats.numpy()[..., None]


def features(clips: Sequence[Clip]) -> tuple[np.ndarray, np.ndarray,
                                             np.ndarray]:
  """Log-mel crops of all clips, their labels, and the clip index per crop."""
  xs, ys, owner = [], [], []
  for i, clip in enumerate(clips):
    c = crops(load_waveform(clip))
    if not len(c):
      continue
    xs.append(log_mel(c))
    ys += [clip.label] * len(c)
    owner += [i] * len(c)
  if not xs:
    raise ValueError("no clip is at least 1 s long")
  return np.concatenate(xs), np.asarray(ys, np.float32), np.asarray(owner)


# --- Model ------------------------------------------------------------------------
def build_model(*, width: int = 32, frames: int = 98):
  """The convolutional classifier: [frames, 64, 1] log-mel -> P(synthetic)."""
  import keras  # pylint: disable=g-import-not-at-top

  inputs = keras.Input([frames, NUM_MELS, 1])
  x = keras.layers.Normalization(axis=None, name="norm")(inputs)
  for i, mult in enumerate((1, 2, 4)):
    x = keras.layers.Conv2D(width * mult, 3, padding="same",
                            use_bias=False, name=f"conv{i}")(x)
    x = keras.layers.BatchNormalization(name=f"bn{i}")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.MaxPooling2D(2)(x)
  x = keras.layers.GlobalAveragePooling2D()(x)
  outputs = keras.layers.Dense(1, activation="sigmoid", name="p_synthetic")(x)
  return keras.Model(inputs, outputs, name="synthetic_speech_detector")


def train(clips: Sequence[Clip], *, epochs: int, batch_size: int = 32,
          width: int = 32, learning_rate: float = 1e-3, seed: int = 0,
          max_steps: Optional[int] = None):
  """Trains the classifier on the crops of ``clips``; returns the model."""
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(seed)
  tf.config.experimental.enable_op_determinism()
  x, y, _ = features(clips)
  if len(set(y.tolist())) < 2:
    raise ValueError("training needs both real and synthetic crops")
  model = build_model(width=width, frames=x.shape[1])
  model.get_layer("norm").adapt(x)
  pos = float(y.mean())
  model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                loss="binary_crossentropy", metrics=["accuracy"])
  steps = math.ceil(len(x) / batch_size)
  if max_steps is not None:
    epochs = max(1, math.ceil(max_steps / steps))
  model.fit(x, y, batch_size=batch_size, epochs=epochs, shuffle=True,
            class_weight={0: 0.5 / (1 - pos), 1: 0.5 / pos}, verbose=0)
  return model


# --- Evaluation ------------------------------------------------------------------
def balanced(real: Sequence[Clip], fake: Sequence[Clip]
             ) -> tuple[list[Clip], list[Clip]]:
  """Subsamples the larger side (in hash order) to the smaller one's size."""
  n = min(len(real), len(fake))
  pick = lambda cs: sorted(cs, key=lambda c: (_stable_hash(c.path), c.path))[:n]
  return pick(real), pick(fake)


def clip_scores(model, clips: Sequence[Clip]) -> tuple[np.ndarray, dict]:
  """Per clip: mean of its crops' P(synthetic); also crop-level accuracy."""
  x, y, owner = features(clips)
  p = model.predict(x, batch_size=64, verbose=0).ravel()
  scores = np.array([p[owner == i].mean() if np.any(owner == i) else np.nan
                     for i in range(len(clips))])
  crop_acc = float(np.mean((p >= 0.5) == (y == 1)))
  return scores, {"crops": int(len(p)), "crop_accuracy": crop_acc}


def evaluate(model, test: Sequence[Clip]) -> dict:
  """Per synthetic kind: balanced clip-level metrics and the ROC curve."""
  from sklearn import metrics  # pylint: disable=g-import-not-at-top

  real = [c for c in test if c.label == REAL]
  out = {}
  for kind in sorted({c.kind for c in test if c.label == SYNTHETIC}):
    r, f = balanced(real, [c for c in test if c.kind == kind])
    if not r or not f:
      continue
    clips = r + f
    scores, crop_stats = clip_scores(model, clips)
    keep = ~np.isnan(scores)
    labels = np.array([c.label for c in clips])[keep]
    scores = scores[keep]
    pred = (scores >= 0.5).astype(int)
    cm = metrics.confusion_matrix(labels, pred, labels=[REAL, SYNTHETIC])
    entry = {"clips_per_class": len(r), "accuracy": float(np.mean(
        pred == labels)), "confusion_matrix": cm.tolist(),
             "confusion_matrix_rows": "true real, true synthetic; columns: "
             "predicted real, predicted synthetic", **crop_stats}
    if len(set(labels.tolist())) == 2:
      fpr, tpr, _ = metrics.roc_curve(labels, scores)
      entry["roc_auc"] = float(metrics.auc(fpr, tpr))
      entry["roc"] = {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    out[kind] = entry
  return out


def plot_roc(results: dict, path: str, *, title: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top

  matplotlib.use("Agg")
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  fig, ax = plt.subplots(figsize=(4.5, 4))
  for kind, r in results.items():
    if "roc" in r:
      ax.plot(r["roc"]["fpr"], r["roc"]["tpr"],
              label=f"{kind} (AUC {r['roc_auc']:.3f}, acc "
              f"{100 * r['accuracy']:.1f}%)")
  ax.plot([0, 1], [0, 1], "k:", lw=1)
  ax.set_xlabel("false positive rate (real called synthetic)")
  ax.set_ylabel("true positive rate")
  ax.set_title(title, fontsize=9)
  ax.legend(fontsize=7, loc="lower right")
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def markdown(report: dict) -> str:
  label = f" ({report['label']})" if report.get("label") else ""
  lines = [f"# Synthetic-speech detector{label}", "",
           f"Train: {report['train']['clips']} clips of "
           f"{report['train']['speakers']} speakers; test: "
           f"{report['test']['clips']} clips of {report['test']['speakers']} "
           "other speakers (speaker-disjoint).", "",
           "| negatives | clips per class | accuracy % | ROC AUC | confusion "
           "[[TN, FP], [FN, TP]] | crop accuracy % |", "|---|---|---|---|---|---|"]
  for kind, r in report["results"].items():
    auc = f"{r['roc_auc']:.3f}" if "roc_auc" in r else "-"
    lines.append(f"| {kind} | {r['clips_per_class']} | "
                 f"{100 * r['accuracy']:.1f} | {auc} | "
                 f"{r['confusion_matrix']} | {100 * r['crop_accuracy']:.1f} |")
  lines += [f"| AudioLM paper (AudioLM continuations, balanced) | | "
            f"{constants.PAPER_DETECTOR_ACCURACY} | | | |", ""]
  return "\n".join(lines)


def write_codec_resyntheses(clips: Sequence[Clip], output_dir: str,
                            tokenizer) -> list[Clip]:
  """Encodes and decodes each clip with an acoustic tokenizer (kind codec)."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  tokenizer.load()
  os.makedirs(output_dir, exist_ok=True)
  out = []
  for clip in clips:
    wave = load_waveform(clip)
    resynth = tokenizer.decode(tokenizer.encode(wave))
    path = os.path.join(output_dir, os.path.splitext(
        os.path.basename(clip.path))[0] + ".wav")
    sf.write(path, np.clip(resynth, -1, 1), constants.SAMPLE_RATE,
             subtype="PCM_16")
    out.append(Clip(path, SYNTHETIC, CODEC, clip.speaker))
  return out


def run_experiment(real: Sequence[Clip], synthetic: Sequence[Clip], *,
                   output_dir: str, test_fraction: float = 0.2,
                   epochs: int = 10, max_steps: Optional[int] = None,
                   batch_size: int = 32, width: int = 32, seed: int = 0,
                   label: str = "") -> dict:
  """Split, train, evaluate, and write model, JSON, markdown and ROC PNG."""
  train_clips, test_clips = split_speakers(list(real) + list(synthetic),
                                           test_fraction=test_fraction)
  for name, part in (("train", train_clips), ("test", test_clips)):
    if {c.label for c in part} != {REAL, SYNTHETIC}:
      raise ValueError(f"the {name} speakers have no "
                       f"{'real' if REAL not in {c.label for c in part} else 'synthetic'}"
                       " clips; give more speakers or change --test_fraction")
  model = train(train_clips, epochs=epochs, max_steps=max_steps,
                batch_size=batch_size, width=width, seed=seed)
  results = evaluate(model, test_clips)
  os.makedirs(output_dir, exist_ok=True)
  model.save(os.path.join(output_dir, "detector.keras"))
  report = {
      "label": label,
      "train": {"clips": len(train_clips),
                "speakers": len({c.speaker for c in train_clips}),
                "speaker_ids": sorted({c.speaker for c in train_clips})},
      "test": {"clips": len(test_clips),
               "speakers": len({c.speaker for c in test_clips}),
               "speaker_ids": sorted({c.speaker for c in test_clips})},
      "settings": {"epochs": epochs, "max_steps": max_steps,
                   "batch_size": batch_size, "width": width, "seed": seed,
                   "test_fraction": test_fraction,
                   "crop_seconds": constants.DETECTOR_CROP_SECONDS},
      "results": results,
      "paper_accuracy": constants.PAPER_DETECTOR_ACCURACY,
  }
  plot_roc(results, os.path.join(output_dir, "roc.png"),
           title=f"synthetic-speech detector{' (' + label + ')' if label else ''}")
  report["roc_png"] = "roc.png"
  with open(os.path.join(output_dir, "detector_report.json"), "w") as f:
    json.dump(report, f, indent=1, sort_keys=True)
  with open(os.path.join(output_dir, "detector_report.md"), "w") as f:
    f.write(markdown(report))
  return report


# --- The command ------------------------------------------------------------------
def make_parser() -> options_lib.CommandParser:
  p = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE), beam=False,
      description="Train and evaluate the synthetic-speech detector (1 s "
      "log-mel crops, speaker-disjoint split, balanced evaluation per kind "
      "of negatives).")
  p.add_argument("--real", required=True,
                 help="folder of real audio (LibriSpeech names give the "
                 "speaker; otherwise the parent folder does)")
  p.add_argument("--generated", default=None,
                 help="generation job output: its continuations (after "
                 "prompt_seconds) are negatives of kind 'generated'")
  p.add_argument("--codec_dir", default=None,
                 help="folder of codec resyntheses: negatives of kind 'codec'")
  p.add_argument("--codec_backend", default=None,
                 help="make codec negatives from --real with this acoustic "
                 "backend (e.g. lyra) into <output_dir>/codec_negatives")
  p.add_argument("--acoustic_option", action="append", default=[],
                 metavar="KEY=VALUE",
                 help="option of --codec_backend (e.g. model_dir=/lyra)")
  p.add_argument("--output_dir", required=True,
                 help="where detector.keras, detector_report.{json,md} and "
                 "roc.png go")
  p.add_argument("--test_fraction", type=float, default=0.2,
                 help="share of speakers held out for the test set")
  p.add_argument("--epochs", type=int, default=10, help="training epochs")
  p.add_argument("--max_steps", type=int, default=None,
                 help="train about this many steps instead of --epochs")
  p.add_argument("--batch_size", type=int, default=32, help="crops per step")
  p.add_argument("--width", type=int, default=32,
                 help="channels of the first conv block (x2, x4 after)")
  p.add_argument("--seed", type=int, default=0, help="training seed")
  p.add_argument("--label", default="",
                 help="label printed with every figure (e.g. 'tiny')")
  return p


def run(argv: Optional[Sequence[str]] = None) -> dict:
  import time  # pylint: disable=g-import-not-at-top

  from audiolm_t5x.pipelines.tokenizers import base  # pylint: disable=g-import-not-at-top

  args, _ = options_lib.parse_args(make_parser(), argv)
  start = time.monotonic()
  with options_lib.user_errors():
    if not 0 < args.test_fraction < 1:
      raise ValueError(f"--test_fraction must be in (0, 1), found "
                       f"{args.test_fraction}")
    real = list_audio(args.real, label=REAL, kind="real")
    synthetic = []
    if args.generated:
      synthetic += list_generated(args.generated)
    if args.codec_dir:
      synthetic += list_audio(args.codec_dir, label=SYNTHETIC, kind=CODEC)
    tokenizer = None
    if args.codec_backend:
      tokenizer = base.make_acoustic_tokenizer(
          args.codec_backend, **options_lib.parse_options(args.acoustic_option))
    if not synthetic and tokenizer is None:
      raise ValueError("no negatives: give --generated, --codec_dir or "
                       "--codec_backend")
  if tokenizer is not None:
    print(f"resynthesizing {len(real)} real clips with {args.codec_backend}",
          flush=True)
    synthetic += write_codec_resyntheses(
        real, os.path.join(args.output_dir, "codec_negatives"), tokenizer)
  print(f"training on {len(real)} real and {len(synthetic)} synthetic clips",
        flush=True)
  with options_lib.user_errors():
    report = run_experiment(
        real, synthetic, output_dir=args.output_dir,
        test_fraction=args.test_fraction, epochs=args.epochs,
        max_steps=args.max_steps, batch_size=args.batch_size,
        width=args.width, seed=args.seed, label=args.label)
  for kind, r in report["results"].items():
    print(f"  {kind}: accuracy {100 * r['accuracy']:.1f} % on "
          f"{r['clips_per_class']} clips per class, AUC "
          f"{r.get('roc_auc', float('nan')):.3f}"
          f"{' (' + args.label + ')' if args.label else ''}")
  print(f"done in {time.monotonic() - start:.1f} s; report: "
        f"{os.path.join(args.output_dir, 'detector_report.md')}, roc.png, "
        "detector.keras")
  return report


def main(argv: Optional[Sequence[str]] = None) -> int:
  """The command's entry point: exit status 0, or 2 for a user error."""
  return options_lib.main(run, MODULE, argv)
