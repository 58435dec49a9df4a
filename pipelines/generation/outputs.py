"""The generation output layout (read by the evaluation jobs; keep it fixed).

::

  <output_dir>/<prompt_id>/sample-<k>.wav   16 kHz mono PCM16, prompt + continuation
  <output_dir>/<prompt_id>/sample-<k>.npz   semantic [S], coarse [T, Q'],
                                            fine [T, Q - Q'], codes [T, Q]
                                            (tokenizer-native ids)
  <output_dir>/<prompt_id>/sample-<k>.json  settings, checkpoints, codec
  <output_dir>/generation.json              run settings, counts, skipped prompts

Unconditional samples use prompt ids ``unconditional-<k>``. Paths may be on
any Beam filesystem (local, ``gs://``).
"""

from __future__ import annotations

import io
import json
import posixpath
from typing import Mapping, Optional

import numpy as np
import soundfile as sf

from audiolm_t5x import constants
from audiolm_t5x.pipelines.generation import chain as chain_lib

SUMMARY_FILENAME = "generation.json"


def sample_stem(output_dir: str, prompt_id: str, sample_index: int) -> str:
  """``<output_dir>/<prompt_id>/sample-<k>`` (add .wav / .npz / .json)."""
  return posixpath.join(output_dir, prompt_id, f"sample-{sample_index}")


def _write(path: str, data: bytes) -> None:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  parent = posixpath.dirname(path)
  if "://" not in path:
    import os  # pylint: disable=g-import-not-at-top
    os.makedirs(parent, exist_ok=True)
  with FileSystems.create(path) as f:
    f.write(data)


def wav_bytes(waveform: np.ndarray) -> bytes:
  """16 kHz mono PCM16 WAV (samples clipped to [-1, 1])."""
  buf = io.BytesIO()
  sf.write(buf, np.clip(np.asarray(waveform, np.float32), -1.0, 1.0),
           constants.SAMPLE_RATE, subtype="PCM_16", format="WAV")
  return buf.getvalue()


def npz_bytes(sample: chain_lib.Sample) -> bytes:
  buf = io.BytesIO()
  np.savez(buf, semantic=np.asarray(sample.semantic, np.int64),
           coarse=np.asarray(sample.coarse, np.int64),
           fine=np.asarray(sample.fine, np.int64),
           codes=np.asarray(sample.codes, np.int64))
  return buf.getvalue()


def sample_metadata(sample: chain_lib.Sample, *,
                    settings: chain_lib.GenerationSettings,
                    checkpoints: Mapping[str, str],
                    codec: Mapping[str, object]) -> dict:
  """The per-sample JSON (keys the evaluation reads)."""
  p = sample.prompt
  unconditional = sample.mode == chain_lib.UNCONDITIONAL
  stages = {"semantic": settings.semantic, "coarse": settings.coarse,
            "fine": settings.fine}
  # Only the stages that ran (no fine stage where stage 2 predicts all levels).
  stages = {k: v for k, v in stages.items() if k in checkpoints} or stages
  top_k = {s.top_k for s in stages.values()}
  top_p = {s.top_p for s in stages.values()}
  return {
      "prompt_id": sample.prompt_id,
      "prompt_path": "" if unconditional or p is None else p.path,
      "speaker_id": -1 if unconditional or p is None else int(p.speaker_id),
      "transcript": "" if unconditional or p is None else p.transcript,
      "mode": sample.mode,
      "prompt_seconds": 0.0 if unconditional else settings.prompt_seconds,
      "seconds": settings.seconds,
      "sample_rate": constants.SAMPLE_RATE,
      "num_samples": settings.num_audio_samples,
      "seed": settings.seed,
      "sample_index": sample.sample_index,
      "temperatures": {k: v.temperature for k, v in stages.items()},
      # One value where the stages agree (the flags set all three), else per
      # stage.
      "top_k": top_k.pop() if len(top_k) == 1 else {
          k: v.top_k for k, v in stages.items()},
      "top_p": top_p.pop() if len(top_p) == 1 else {
          k: v.top_p for k, v in stages.items()},
      "fine_window_seconds": settings.fine_window_seconds,
      "prompt_audio": ("none" if unconditional or not settings.prompt_seconds
                       else
                       "original samples" if p is not None and
                       p.waveform is not None else "decoded prompt codes"),
      "checkpoints": dict(checkpoints),
      "codec": dict(codec),
      "frames": {"semantic": int(len(sample.semantic)),
                 "acoustic": int(sample.codes.shape[0])},
  }


def write_sample(output_dir: str, sample: chain_lib.Sample, *,
                 settings: chain_lib.GenerationSettings,
                 checkpoints: Mapping[str, str],
                 codec: Mapping[str, object]) -> str:
  """Writes the sample's .wav (if decoded), .npz and .json; returns the stem."""
  stem = sample_stem(output_dir, sample.prompt_id, sample.sample_index)
  if sample.waveform is not None:
    _write(stem + ".wav", wav_bytes(sample.waveform))
  _write(stem + ".npz", npz_bytes(sample))
  meta = sample_metadata(sample, settings=settings, checkpoints=checkpoints,
                         codec=codec)
  _write(stem + ".json", json.dumps(meta, indent=2, sort_keys=True).encode())
  return stem


def write_summary(output_dir: str, summary: Mapping[str, object]) -> str:
  path = posixpath.join(output_dir, SUMMARY_FILENAME)
  _write(path, json.dumps(summary, indent=2, sort_keys=True,
                          default=str).encode())
  return path


def read_summary(output_dir: str) -> Optional[dict]:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  path = posixpath.join(output_dir, SUMMARY_FILENAME)
  if not FileSystems.exists(path):
    return None
  with FileSystems.open(path) as f:
    return json.loads(f.read().decode())
