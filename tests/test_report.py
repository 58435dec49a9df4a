"""The data report job on a literal tiny dataset, against figures by hand."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from audiolm_t5x import contract
from audiolm_t5x.pipelines import data_report
from tests.conftest import REPO_ROOT

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
K, Q, N = 4, 2, 4


def _record(rid, split, spk, chap, num_samples, sem, level0, level1):
  return contract.TokenRecord(
      id=rid, split=split, speaker_id=spk, chapter_id=chap, source=rid,
      transcript="", num_samples=num_samples,
      semantic_tokens=np.array(sem),
      acoustic_tokens=np.stack([level0, level1], axis=1))


# train-clean-100: speaker 1, chapters 10 and 11; dev-clean: speaker 2.
RECORDS = [
    # 2560 samples = 0.16 s: 4 semantic tokens, 8 acoustic frames.
    _record("1-10-0000", "train-clean-100", 1, 10, 2560, [0, 0, 1, 1],
            [0] * 8, [0, 1, 2, 3, 0, 1, 2, 3]),
    # 4160 samples = 0.26 s: 6 semantic tokens, 13 acoustic frames.
    _record("1-11-0000", "train-clean-100", 1, 11, 4160, [2, 2, 2, 2, 1, 0],
            [1] * 13, [3] * 13),
    # 1280 samples = 0.08 s: 2 semantic tokens, 4 acoustic frames.
    _record("2-20-0000", "dev-clean", 2, 20, 1280, [3, 2], [2] * 4, [0] * 4),
]
DEAD = [
    contract.DeadLetter(path="a.flac", id="1-10-0001", split="train-clean-100",
                        step="decode", reason="truncated FLAC"),
    contract.DeadLetter(path="b.flac", id="1-10-0002", split="train-clean-100",
                        step="decode", reason="truncated FLAC"),
    contract.DeadLetter(path="c.flac", id="2-20-0001", split="dev-clean",
                        step="transcript", reason="no line for 2-20-0001"),
]


def write_dataset(root):
  """Writes RECORDS through the contract's serialization, as the job does."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  for split in ("train-clean-100", "dev-clean"):
    os.makedirs(root / split)
    with tf.io.TFRecordWriter(
        str(root / split / contract.shard_name(split, 0, 1))) as w:
      for r in RECORDS:
        if r.split == split:
          r.validate(semantic_codebook_size=K, acoustic_levels=Q,
                     acoustic_codebook_size=N)
          w.write(r.to_example_bytes())
  info = contract.DatasetInfo(
      semantic={"name": "fake_semantic", "codebook_size": K, "rate_hz": 25,
                "fingerprint": "s"},
      acoustic={"name": "fake_acoustic", "levels": Q, "codebook_size": N,
                "rate_hz": 50, "fingerprint": "a"},
      splits={"train-clean-100": {"records": 2}, "dev-clean": {"records": 1}})
  (root / contract.DATASET_INFO_FILENAME).write_text(info.to_json())
  (root / contract.DEAD_LETTER_FILENAME).write_text(
      "".join(d.to_json() + "\n" for d in DEAD))
  return root


@pytest.fixture(scope="module")
def report(tmp_path_factory):
  data = write_dataset(tmp_path_factory.mktemp("tiny_tokens"))
  out = tmp_path_factory.mktemp("report")
  stats = data_report.run([f"--data_dir={data}", f"--output_dir={out}",
                           "--duration_bin_seconds=0.1",
                           "--max_duration_seconds=0.3"])
  return stats, out


def test_split_counts_hours_and_rates(report):
  stats, _ = report
  train, dev, both = (stats["splits"][k] for k in
                      ("train-clean-100", "dev-clean", data_report.ALL))
  assert (train["records"], train["speakers"], train["chapters"]) == (2, 1, 2)
  assert (dev["records"], dev["speakers"], dev["chapters"]) == (1, 1, 1)
  assert (both["records"], both["speakers"], both["chapters"]) == (3, 2, 3)
  assert train["num_samples"] == 6720
  assert train["hours"] == pytest.approx(0.42 / 3600)
  assert both["seconds"] == pytest.approx(0.5)
  # train: 10 semantic tokens, 21 frames x 2 levels in 0.42 s.
  assert train["semantic_tokens_per_second"] == pytest.approx(10 / 0.42)
  assert train["acoustic_frames_per_second"] == pytest.approx(50.0)
  assert train["acoustic_tokens_per_second"] == pytest.approx(100.0)
  assert dev["semantic_tokens_per_second"] == pytest.approx(25.0)


def test_dedup_ratio_as_the_tasks_dedup(report):
  stats, _ = report
  s = stats["splits"]
  # [0,0,1,1] -> 2 kept, [2,2,2,2,1,0] -> 3, [3,2] -> 2.
  assert s["train-clean-100"]["semantic_dedup_tokens"] == 5
  assert s["train-clean-100"]["dedup_ratio"] == pytest.approx(0.5)
  assert s["dev-clean"]["dedup_ratio"] == pytest.approx(1.0)
  assert s[data_report.ALL]["dedup_ratio"] == pytest.approx(7 / 12)
  assert s["dev-clean"]["semantic_dedup_tokens_per_second"] == pytest.approx(
      25.0)
  assert data_report.dedup_count(np.array([7, 7, 7, 3, 3, 7, 9, 9])) == 4


def test_duration_histogram(report):
  stats, _ = report
  h = stats["splits"][data_report.ALL]["duration_histogram"]
  assert h["edges"] == pytest.approx([0.0, 0.1, 0.2, 0.3])
  assert h["counts"] == [1, 1, 1, 0]  # 0.08 s, 0.16 s, 0.26 s
  assert stats["splits"]["train-clean-100"]["duration_histogram"][
      "counts"] == [0, 1, 1, 0]


def test_semantic_cluster_usage(report):
  stats, _ = report
  train = stats["splits"]["train-clean-100"]["semantic_usage"]
  assert train["counts"] == [3, 3, 4, 0]
  assert (train["used"], train["dead"]) == (3, 1)
  p = np.array([0.3, 0.3, 0.4])
  assert train["perplexity"] == pytest.approx(
      math.exp(-(p * np.log(p)).sum()))
  assert train["perplexity"] == pytest.approx(2.9710, abs=1e-4)
  dev = stats["splits"]["dev-clean"]["semantic_usage"]
  assert dev["counts"] == [0, 0, 1, 1]
  assert (dev["used"], dev["dead"], dev["perplexity"]) == (2, 2,
                                                           pytest.approx(2.0))
  both = stats["splits"][data_report.ALL]["semantic_usage"]
  assert both["counts"] == [3, 3, 5, 1]
  assert both["max_share"] == pytest.approx(5 / 12)


def test_acoustic_code_usage_per_level(report):
  stats, _ = report
  levels = stats["splits"][data_report.ALL]["acoustic_usage"]
  assert [u["level"] for u in levels] == [0, 1]
  assert levels[0]["counts"] == [8, 13, 4, 0]
  assert (levels[0]["used"], levels[0]["dead"]) == (3, 1)
  assert levels[1]["counts"] == [6, 2, 2, 15]
  p = np.array([6, 2, 2, 15]) / 25
  assert levels[1]["perplexity"] == pytest.approx(
      math.exp(-(p * np.log(p)).sum()))
  dev = stats["splits"]["dev-clean"]["acoustic_usage"]
  assert [(u["perplexity"], u["dead"]) for u in dev] == [(1.0, 3), (1.0, 3)]


def test_dead_letters_by_step_and_reason(report):
  stats, _ = report
  assert stats["dead_letters_by_step"] == {"decode": 2, "transcript": 1}
  assert stats["dead_letters"] == [
      {"split": "train-clean-100", "step": "decode",
       "reason": "truncated FLAC", "count": 2},
      {"split": "dev-clean", "step": "transcript",
       "reason": "no line for 2-20-0001", "count": 1}]


def test_plots_are_real_png_images(report):
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.image  # pylint: disable=g-import-not-at-top

  _, out = report
  for name in ("durations.png", "semantic.png", "acoustic.png",
               "dead_letters.png"):
    data = (out / name).read_bytes()
    assert data[:8] == PNG_MAGIC, name
    image = matplotlib.image.imread(str(out / name))
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0.01, f"{name} is blank"


def test_markdown_report_shows_the_figures(report):
  _, out = report
  text = (out / "report.md").read_text()
  assert "| train-clean-100 | 2 | 0.0001 | 1 | 2 | 10 | 5 | 0.500 | 23.81 |" \
      in text, text
  assert "| dev-clean | 4 | 2 | 2 | 2.00 | 0.500 |" in text  # semantic usage
  assert "| 2 | train-clean-100 | decode | truncated FLAC |" in text
  for name in ("durations.png", "semantic.png", "acoustic.png",
               "dead_letters.png"):
    assert f"({name})" in text
  stats = json.loads((out / data_report.STATS_FILENAME).read_text())
  # Called from Python, the command is recorded under its canonical name.
  assert stats["command"].startswith(
      "python -m audiolm_t5x.pipelines.report --data_dir="), stats["command"]


def test_user_errors_exit_2_with_one_line(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  proc = subprocess.run(
      [sys.executable, "-m", "pipelines.report", f"--data_dir={tmp_path}"],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 2
  errors = [l for l in proc.stderr.splitlines() if "report: error:" in l]
  assert len(errors) == 1 and "dataset_info.json" in errors[0], proc.stderr
  assert "Traceback" not in proc.stderr
  assert data_report.main([f"--data_dir={tmp_path}", "--no_such_flag=1"]) == 2
