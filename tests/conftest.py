"""Shared fixtures: paths to the team's real assets (read, never copied)."""

import os
import pathlib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
ASSETS_DIR = pathlib.Path(
    os.environ.get("AUDIOLM_ASSETS_DIR", REPO_ROOT.parent / "shared" / "assets"))
CLIPS_DIR = ASSETS_DIR / "librispeech_clips"
LYRA_DIR = ASSETS_DIR / "lyra_soundstream"


@pytest.fixture(scope="session")
def clips_dir() -> pathlib.Path:
  if not CLIPS_DIR.is_dir():
    pytest.skip(f"LibriSpeech clips not found at {CLIPS_DIR} "
                "(set AUDIOLM_ASSETS_DIR)")
  return CLIPS_DIR


@pytest.fixture(scope="session")
def lyra_dir() -> pathlib.Path:
  if not (LYRA_DIR / "soundstream_encoder.tflite").is_file():
    pytest.skip(f"Lyra SoundStream files not found at {LYRA_DIR} "
                "(set AUDIOLM_ASSETS_DIR)")
  return LYRA_DIR
