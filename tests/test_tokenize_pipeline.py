"""End to end: the tokenization job on real clips plus awkward and bad inputs."""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil
import tarfile

import numpy as np
import pytest
from scipy import signal
import soundfile as sf
import tensorflow as tf

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines import audio
from audiolm_t5x.pipelines import tokenize_corpus
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import kmeans
from tests import conftest
from tests import corpus_fixtures as cf

SPLIT = "dev-clean"
GOOD = ("2412-153948-0000", "2412-153948-0001", "1088-134315-0000")


def _write(path: pathlib.Path, data: np.ndarray, rate: int) -> None:
  path.parent.mkdir(parents=True, exist_ok=True)
  sf.write(str(path), data, rate, format="FLAC", subtype="PCM_16")


@pytest.fixture(scope="module")
def awkward_tree(tmp_path_factory, clips_dir):
  """Good clips plus one input of each awkward or bad kind, with reasons."""
  root = tmp_path_factory.mktemp("awkward")
  cf.build_tree(root, clips_dir, {SPLIT: GOOD})
  clip, rate = sf.read(str(clips_dir / "198-209-0000.flac"), dtype="float32")
  assert rate == constants.SAMPLE_RATE

  def add(utt, data, rate_hz, text=True):
    _write(cf.chapter_dir(root, SPLIT, utt) / f"{utt}.flac", data, rate_hz)
    if text:
      cf.add_transcript_line(root, SPLIT, utt)

  add("7000-100-0000", signal.resample_poly(clip, 1, 2), 8000)  # 8 kHz
  stereo = signal.resample_poly(clip, 441, 160)
  add("7000-100-0001", np.stack([stereo, 0.5 * stereo], axis=1), 44100)
  # Several minutes: all clips back to back (~170 s), streamed in blocks.
  long = np.concatenate([sf.read(str(p), dtype="float32")[0]
                         for p in sorted(clips_dir.glob("*.flac"))] * 2)
  add("7000-100-0002", long, 16000)
  add("7000-100-0003", np.zeros(32000, np.float32), 16000)  # silence
  add("7000-100-0004", clip, 16000, text=False)  # no transcript line
  d = cf.chapter_dir(root, SPLIT, "7000-100-0005")
  good = (clips_dir / "2412-153948-0000.flac").read_bytes()
  (d / "7000-100-0005.flac").write_bytes(good[: len(good) // 3])  # truncated
  cf.add_transcript_line(root, SPLIT, "7000-100-0005")
  (d / "7000-100-0006.flac").write_bytes(b"")  # empty
  cf.add_transcript_line(root, SPLIT, "7000-100-0006")
  rng = np.random.default_rng(0)
  (d / "7000-100-0007.flac").write_bytes(
      good[:4096] + rng.integers(0, 256, 50000, dtype=np.uint8).tobytes())
  cf.add_transcript_line(root, SPLIT, "7000-100-0007")
  return root


EXPECTED_FAILED = {
    "7000-100-0003": ("decode", "digital silence"),
    "7000-100-0004": ("transcript", "no line for 7000-100-0004"),
    "7000-100-0005": ("decode", "corrupt or truncated"),
    "7000-100-0006": ("decode", "empty file"),
    "7000-100-0007": ("decode", "corrupt or truncated"),
}
EXPECTED_WRITTEN = set(GOOD) | {"7000-100-0000", "7000-100-0001",
                                "7000-100-0002"}


def _run(tree, out, kmeans_path, lyra_dir, *extra):
  return tokenize_corpus.run([
      f"--input_dir={tree}", f"--output_dir={out}", f"--kmeans={kmeans_path}",
      f"--lyra_dir={lyra_dir}", "--num_shards=3", "--stream_seconds=60",
      *conftest.TEST_LYRA_OPTIONS, *extra])


def _records(out) -> dict[str, contract.TokenRecord]:
  info = contract.DatasetInfo.load(str(out))
  recs = {}
  for path in sorted(glob.glob(os.path.join(out, "*", "*.tfrecord"))):
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      r = contract.TokenRecord.from_example_bytes(
          raw, acoustic_levels=info.acoustic_levels)
      recs[r.id] = r
  return recs


def _shard_bytes(out) -> dict[str, bytes]:
  return {os.path.basename(p): open(p, "rb").read()
          for p in sorted(glob.glob(os.path.join(out, "*", "*.tfrecord")))}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, awkward_tree, kmeans_codebook, lyra_dir):
  out = tmp_path_factory.mktemp("out1")
  _run(awkward_tree, out, kmeans_codebook, lyra_dir)
  return out


def test_every_input_is_written_or_dead_lettered(first_run):
  info = contract.DatasetInfo.load(str(first_run))
  s = info.splits[SPLIT]
  assert s["inputs"] == s["records"] + s["failed"] == 11
  assert set(_records(first_run)) == EXPECTED_WRITTEN
  dead = [json.loads(l) for l in open(first_run / contract.DEAD_LETTER_FILENAME)]
  got = {d["id"]: (d["step"], d["reason"]) for d in dead}
  assert set(got) == set(EXPECTED_FAILED)
  for utt, (step, words) in EXPECTED_FAILED.items():
    assert got[utt][0] == step
    assert words in got[utt][1], got[utt]
  for d in dead:
    assert d["path"].endswith(d["id"] + ".flac")
  assert s["failed_by_step"] == {"decode": 4, "transcript": 1}


def test_resampled_downmixed_and_token_rates(first_run):
  recs = _records(first_run)
  for r in recs.values():
    assert r.semantic_tokens.shape == (r.num_samples // 640,)
    assert r.acoustic_tokens.shape == (r.num_samples // 320, 12)
    assert r.acoustic_tokens.shape[0] - 2 * r.semantic_tokens.shape[0] in (0, 1)
  # 8 kHz and 44.1 kHz inputs come out at 16 kHz with the clip's duration.
  n16 = recs["2412-153948-0000"].num_samples
  del n16
  clip_seconds = 13.91
  for utt in ("7000-100-0000", "7000-100-0001"):
    assert abs(recs[utt].num_samples / 16000 - clip_seconds) < 0.01
  info = contract.DatasetInfo.load(str(first_run))
  assert info.acoustic["resolver"] == "xnnpack"
  assert info.splits[SPLIT]["hours"] > 0


def test_streamed_long_recording_equals_whole_file(first_run, awkward_tree,
                                                   kmeans_codebook, lyra_dir):
  rec = _records(first_run)["7000-100-0002"]
  assert rec.num_samples > 160 * 16000
  path = next(awkward_tree.glob(f"{SPLIT}/7000/100/7000-100-0002.flac"))
  wave = audio.decode(path.read_bytes())
  sem = base.make_semantic_embedder("logmel")
  book = kmeans.KMeansCodebook.load(str(kmeans_codebook))
  ac = base.make_acoustic_tokenizer("lyra", model_dir=str(lyra_dir), levels=24,
                                    pack=2)
  np.testing.assert_array_equal(rec.semantic_tokens,
                                book.quantize(sem.embed(wave)))
  np.testing.assert_array_equal(rec.acoustic_tokens, ac.encode(wave))


def test_rerun_is_byte_identical_and_resumes(tmp_path, first_run,
                                             awkward_tree, kmeans_codebook,
                                             lyra_dir):
  out = tmp_path / "out"
  _run(awkward_tree, out, kmeans_codebook, lyra_dir)
  assert _shard_bytes(out) == _shard_bytes(first_run)
  # Simulate a crash before shard 1 was committed: drop its manifest and
  # records; the rerun redoes that shard only.
  manifest = sorted(glob.glob(str(out / SPLIT / "*-00001-of-*.manifest.json")))
  assert manifest
  redo = json.load(open(manifest[0]))
  os.remove(manifest[0])
  os.remove(manifest[0].replace(".manifest.json", ".tfrecord"))
  stamp = {p: os.path.getmtime(p)
           for p in glob.glob(str(out / SPLIT / "*.tfrecord"))}
  _run(awkward_tree, out, kmeans_codebook, lyra_dir)
  assert _shard_bytes(out) == _shard_bytes(first_run)
  for p, t in stamp.items():
    assert os.path.getmtime(p) == t, f"{p} was rewritten"
  info = contract.DatasetInfo.load(str(out))
  assert info.splits[SPLIT]["inputs"] == 11
  assert redo["records"] + redo["failed"] > 0


def test_rerun_with_other_settings_is_refused(tmp_path, first_run,
                                              awkward_tree, kmeans_codebook,
                                              lyra_dir):
  out = tmp_path / "out"
  shutil.copytree(first_run, out)
  with pytest.raises(ValueError, match="other settings"):
    _run(awkward_tree, out, kmeans_codebook, lyra_dir,
         "--acoustic_option=resolver=builtin")


def test_multi_processing_runner_gives_the_same_content(
    tmp_path, first_run, awkward_tree, kmeans_codebook, lyra_dir):
  out = tmp_path / "mp"
  _run(awkward_tree, out, kmeans_codebook, lyra_dir,
       "--direct_running_mode=multi_processing", "--direct_num_workers=2")
  assert _shard_bytes(out) == _shard_bytes(first_run)


def test_archives_are_streamed_and_unsafe_members_refused(
    tmp_path, librispeech_tree, kmeans_codebook, lyra_dir, tokenized_dataset):
  archives = tmp_path / "archives"
  archives.mkdir()
  evil = tmp_path / "evil.txt"
  evil.write_text("x")
  with tarfile.open(archives / "dev-clean.tar.gz", "w:gz") as tar:
    tar.add(librispeech_tree / "dev-clean", arcname="LibriSpeech/dev-clean")
    tar.add(evil, arcname="LibriSpeech/../../escape.flac")
    link = tarfile.TarInfo("LibriSpeech/dev-clean/2412/153948/link.flac")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    tar.addfile(link)
  out = tmp_path / "out"
  tokenize_corpus.run([f"--input_dir={archives}", "--archives",
                f"--output_dir={out}", f"--kmeans={kmeans_codebook}",
                f"--lyra_dir={lyra_dir}", "--num_shards=2",
                *conftest.TEST_LYRA_OPTIONS])
  dead = [json.loads(l) for l in open(out / contract.DEAD_LETTER_FILENAME)]
  reasons = sorted(d["reason"] for d in dead)
  assert len(reasons) == 2, dead
  assert "escapes the archive root" in reasons[0]
  assert "is a link" in reasons[1]
  from_archive = _records(out)
  from_dir = {k: v for k, v in _records(tokenized_dataset).items()
              if v.split == "dev-clean"}
  assert set(from_archive) == set(from_dir) == {"2412-153948-0000",
                                                "2412-153948-0001"}
  for k, r in from_archive.items():
    np.testing.assert_array_equal(r.acoustic_tokens, from_dir[k].acoustic_tokens)
    assert r.source == from_dir[k].source


def test_chapter_grouping_in_reading_order(tmp_path, librispeech_tree,
                                           kmeans_codebook, lyra_dir):
  out = tmp_path / "grouped"
  tokenize_corpus.run([f"--input_dir={librispeech_tree}", "--splits=dev-clean",
                f"--output_dir={out}", f"--kmeans={kmeans_codebook}",
                f"--lyra_dir={lyra_dir}", "--group_seconds=0",
                *conftest.TEST_LYRA_OPTIONS])
  recs = _records(out)
  assert list(recs) == ["2412-153948-0000_0001"]
  r = recs["2412-153948-0000_0001"]
  assert r.source == ("dev-clean/2412/153948/2412-153948-0000.flac;"
                      "dev-clean/2412/153948/2412-153948-0001.flac")
  assert r.num_samples == 186560 + 168160
