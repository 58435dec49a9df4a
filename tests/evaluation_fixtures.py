"""Folders in the generation job's output layout, built from the team's clips.

The layout (fixed by the generation issue)::

  <dir>/generation.json
  <dir>/<prompt_id>/sample-<k>.wav   16 kHz mono: prompt + continuation
  <dir>/<prompt_id>/sample-<k>.npz   semantic [Ts], coarse [Tc, Q'],
                                     fine [Tc, Q - Q'], codes [T, Q]
  <dir>/<prompt_id>/sample-<k>.json  metadata

Here a "continuation" is real audio: the clip itself (its next seconds after
the prompt), its Lyra resynthesis, or the prompt played again (the repetition
failure). Tokens are made up with the right shapes, except where a test sets
them.
"""

from __future__ import annotations

import json
import pathlib
from typing import Optional

import numpy as np
import soundfile as sf

from audiolm_t5x import constants

SR = constants.SAMPLE_RATE


def read_clip(clips_dir: pathlib.Path, utt: str, seconds: float) -> np.ndarray:
  wave, sr = sf.read(clips_dir / f"{utt}.flac", dtype="float32")
  assert sr == SR
  return wave[:int(seconds * SR)]


def write_sample(root: pathlib.Path, *, prompt_id: str, index: int,
                 waveform: np.ndarray, speaker_id: str, mode: str,
                 prompt_seconds: float, prompt_path: str = "",
                 transcript: str = "",
                 semantic: Optional[np.ndarray] = None) -> pathlib.Path:
  """Writes one sample's wav, npz and json; returns the json path."""
  folder = root / prompt_id
  folder.mkdir(parents=True, exist_ok=True)
  stem = folder / f"sample-{index}"
  sf.write(f"{stem}.wav", waveform, SR, subtype="PCM_16")
  tc = len(waveform) // constants.ACOUSTIC_FRAME_SAMPLES
  ts = len(waveform) // constants.SEMANTIC_FRAME_SAMPLES
  q, qc = constants.ACOUSTIC_LEVELS, constants.COARSE_LEVELS
  rng = np.random.default_rng(index)
  codes = rng.integers(0, constants.ACOUSTIC_CODEBOOK_SIZE, [tc, q])
  np.savez(f"{stem}.npz",
           semantic=(semantic if semantic is not None else
                     rng.integers(0, constants.SEMANTIC_CODEBOOK_SIZE, [ts])),
           coarse=codes[:, :qc], fine=codes[:, qc:], codes=codes)
  meta = {
      "prompt_id": prompt_id, "prompt_path": prompt_path,
      "speaker_id": speaker_id, "transcript": transcript, "mode": mode,
      "prompt_seconds": prompt_seconds, "seconds": len(waveform) / SR,
      "sample_rate": SR, "seed": 0, "sample_index": index,
      "temperatures": [constants.SEMANTIC_TEMPERATURE,
                       constants.COARSE_TEMPERATURE,
                       constants.FINE_TEMPERATURE],
      "top_k": 0, "top_p": 1.0, "checkpoints": {}, "codec": {"name": "lyra"}}
  with open(f"{stem}.json", "w") as f:
    json.dump(meta, f)
  return pathlib.Path(f"{stem}.json")


def write_generation_json(root: pathlib.Path, **extra) -> None:
  root.mkdir(parents=True, exist_ok=True)
  with open(root / "generation.json", "w") as f:
    json.dump({"note": "test fixture built from real clips", **extra}, f)
