"""Shared fixtures: paths to the team's real assets (read, never copied)."""

import os
import pathlib

import pytest

pytest_plugins = ["tests.t5x_fixtures"]

REPO_ROOT = pathlib.Path(__file__).resolve().parent.parent
ASSETS_DIR = pathlib.Path(
    os.environ.get("AUDIOLM_ASSETS_DIR", REPO_ROOT.parent / "shared" / "assets"))
CLIPS_DIR = ASSETS_DIR / "librispeech_clips"
LYRA_DIR = ASSETS_DIR / "lyra_soundstream"


@pytest.fixture(scope="session", autouse=True)
def _own_staging_dir(tmp_path_factory):
  """Model copies staged by this test run stay in this run's temp folder.

  The default (``<tmp>/audiolm_t5x_staging``) outlives the run, so tests would
  otherwise meet copies left by an earlier run on the same machine.
  """
  with pytest.MonkeyPatch.context() as mp:
    mp.setenv("AUDIOLM_STAGING_DIR", str(tmp_path_factory.mktemp("staging")))
    yield


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


# --- A real tokenized dataset (session-scoped; built once per test run) ------
# Records written by the real Beam tokenization job (DirectRunner) from the
# LibriSpeech clips: train-clean-100 (4 clips) and dev-clean (2 clips), log-mel
# semantic tokens with a K=16 codebook fitted by the real fit_kmeans job, and
# Lyra acoustic tokens with levels=24, pack=2 (Q=12 levels of N=256 codes).

TEST_KMEANS_K = 16
TEST_LYRA_OPTIONS = ("--acoustic_option=levels=24", "--acoustic_option=pack=2")


@pytest.fixture(scope="session")
def librispeech_tree(tmp_path_factory, clips_dir) -> pathlib.Path:
  from tests import corpus_fixtures  # pylint: disable=g-import-not-at-top

  return corpus_fixtures.build_tree(tmp_path_factory.mktemp("LibriSpeech"),
                                    clips_dir)


@pytest.fixture(scope="session")
def kmeans_codebook(tmp_path_factory, librispeech_tree) -> pathlib.Path:
  from audiolm_t5x.pipelines import fit_kmeans  # pylint: disable=g-import-not-at-top

  out = tmp_path_factory.mktemp("kmeans") / "kmeans.npz"
  fit_kmeans.run([f"--input_dir={librispeech_tree}", f"--output={out}",
                  f"--k={TEST_KMEANS_K}", "--seed=0"])
  return out


@pytest.fixture(scope="session")
def tokenized_dataset(tmp_path_factory, librispeech_tree, kmeans_codebook,
                      lyra_dir) -> pathlib.Path:
  """Output dir of the real tokenization job: dataset_info.json + shards."""
  from audiolm_t5x.pipelines import tokenize_corpus  # pylint: disable=g-import-not-at-top

  out = tmp_path_factory.mktemp("tokens")
  tokenize_corpus.run([f"--input_dir={librispeech_tree}", f"--output_dir={out}",
                f"--kmeans={kmeans_codebook}", f"--lyra_dir={lyra_dir}",
                "--num_shards=2", *TEST_LYRA_OPTIONS])
  return out
