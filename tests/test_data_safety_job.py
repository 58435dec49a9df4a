"""Data safety end to end: the real tokenization job on an operator's bad day.

One adversarial corpus (``tests/adversarial_corpus.py``: every kind of bad
candidate, 2 s cuts of the team's clips) is tokenized once; later tests
copy that output and break it (deleted and corrupted shards, changed
settings, added files, a job killed with SIGKILL, a second job at once).
"""

from __future__ import annotations

import glob
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from audiolm_t5x import contract
from audiolm_t5x.pipelines import integrity
from audiolm_t5x.pipelines import writer_lock
from tests import adversarial_corpus as adv
from tests import conftest

REPO = pathlib.Path(__file__).resolve().parent.parent
LYRA_OPTIONS = ("--acoustic_option=levels=6",)
NUM_SHARDS = 3


def _job_module():
  """The tokenization job's module (one place, for the name at merge)."""
  from audiolm_t5x.pipelines import tokenize_corpus  # pylint: disable=g-import-not-at-top
  return tokenize_corpus


def _args(tree, out, book, lyra, *extra):
  return [f"--input_dir={tree}", f"--output_dir={out}", f"--kmeans={book}",
          f"--lyra_dir={lyra}", f"--num_shards={NUM_SHARDS}", *LYRA_OPTIONS,
          *extra]


def _run(tree, out, book, lyra, *extra) -> int:
  return _job_module().main(_args(tree, out, book, lyra, *extra))


def _shards(out) -> dict:
  return {os.path.relpath(p, out): open(p, "rb").read()
          for p in sorted(glob.glob(os.path.join(out, "*", "*.tfrecord")))}


def _records(out) -> dict:
  info = contract.DatasetInfo.load(str(out))
  recs = {}
  for path in integrity.committed_shards(str(out), sorted(info.splits)):
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
      r = contract.TokenRecord.from_example_bytes(
          raw, acoustic_levels=info.acoustic_levels)
      assert r.id not in recs, f"duplicate id {r.id}"
      recs[r.id] = r
  return recs


def _dead(out) -> dict:
  lines = open(os.path.join(out, contract.DEAD_LETTER_FILENAME)).readlines()
  return {json.loads(l)["path"]: json.loads(l) for l in lines}


@pytest.fixture(scope="module")
def bad_day(tmp_path_factory, clips_dir):
  root = tmp_path_factory.mktemp("bad_day")
  expected = adv.build_tree(root / "corpus", clips_dir, root / "outside")
  return root / "corpus", expected


@pytest.fixture(scope="module")
def first(tmp_path_factory, bad_day, kmeans_codebook, lyra_dir):
  tree, _ = bad_day
  out = tmp_path_factory.mktemp("first")
  assert _run(tree, out, kmeans_codebook, lyra_dir) == 0
  return out


def test_every_candidate_is_a_record_or_a_named_dead_letter(first, bad_day):
  tree, expected = bad_day
  info = contract.DatasetInfo.load(str(first))
  inputs = sum(s["inputs"] for s in info.splits.values())
  records = sum(s["records"] for s in info.splits.values())
  failed = sum(s["failed"] for s in info.splits.values())
  assert (inputs, records, failed) == (16, 7, 9)
  assert set(_records(first)) == expected["written"]
  dead = {os.path.relpath(p, tree): d for p, d in _dead(first).items()}
  assert set(dead) == set(expected["dead"])
  for rel, (step, words) in expected["dead"].items():
    assert dead[rel]["step"] == step, dead[rel]
    assert words in dead[rel]["reason"], dead[rel]
  s = info.splits[adv.SPLIT]
  assert s["flagged"] == {k: len(v) for k, v in expected["flags"].items()}
  flagged = {}
  for m in integrity.verify(str(first)).manifests.values():
    for flag, ids in m["flagged"].items():
      flagged.setdefault(flag, []).extend(ids)
  assert flagged == expected["flags"]
  assert s["failed_by_step"] == {"read": 4, "decode": 1, "format": 1,
                                 "duplicate": 1, "transcript": 1}
  assert info.splits[contract_other_split()]["failed"] == 1
  assert not os.path.exists(writer_lock.lock_path(str(first)))


def contract_other_split():
  from audiolm_t5x.pipelines import corpus  # pylint: disable=g-import-not-at-top
  return corpus.OTHER_SPLIT


def test_manifests_hold_checksums_counts_ids_and_inputs(first, capsys):
  report = integrity.verify(str(first))
  assert report.ok, report.problems
  for m in report.manifests.values():
    data = open(integrity.shard_path_of(str(first), m), "rb").read()
    import hashlib  # pylint: disable=g-import-not-at-top
    assert m["sha256"] == hashlib.sha256(data).hexdigest()
    assert m["bytes"] == len(data)
    assert m["records"] == len(m["ids"])
    assert m["records"] + m["failed"] == len(
        [i for i in m["inputs"] if not i.lower().endswith(".trans.txt")])
  from audiolm_t5x.pipelines import verify  # pylint: disable=g-import-not-at-top
  assert verify.main([f"--output_dir={first}"]) == 0
  assert "7 records, 9 dead letters; OK" in capsys.readouterr().out


def test_rerun_verifies_and_repairs_deleted_and_corrupt_shards(
    tmp_path, first, bad_day, kmeans_codebook, lyra_dir, monkeypatch):
  tree, _ = bad_day
  out = tmp_path / "out"
  shutil.copytree(first, out)
  shards = sorted(glob.glob(str(out / adv.SPLIT / "*.tfrecord")))
  os.remove(shards[0])
  with open(shards[1], "r+b") as f:
    f.seek(40)
    f.write(b"\x00\x01\x02")
  stray = shards[2] + ".tmp-deadbeef"
  open(stray, "wb").close()
  # The SeqIO tasks read exactly the committed shards and fail loudly.
  from audiolm_t5x.tasks import stages  # pylint: disable=g-import-not-at-top
  stages._load_info.cache_clear()
  monkeypatch.setenv("AUDIOLM_DATA_DIR", str(out))
  monkeypatch.setenv("AUDIOLM_VALIDATION_SPLITS", adv.SPLIT)
  with pytest.raises((integrity.CorruptShardError, IOError),
                     match=os.path.basename(shards[0])):
    stages.resolve_corpus(stages.SPEECH).file_patterns(stages.VALIDATION)
  assert verify_counts(out) == {"missing": 1, "corrupt": 1, "temporary": 1}
  assert _run(tree, out, kmeans_codebook, lyra_dir) == 0
  assert _shards(out) == _shards(first)
  assert integrity.verify(str(out)).ok
  assert not os.path.exists(stray)
  # A shard written before a crash but never committed is never read.
  orphan = out / adv.SPLIT / f"{adv.SPLIT}-00007-of-00009.tfrecord"
  shutil.copy(shards[0], orphan)
  committed = stages.committed_shards(str(out), adv.SPLIT)
  assert [os.path.basename(p) for p in committed] == [
      os.path.basename(p) for p in shards]
  info = contract.DatasetInfo.load(str(out))
  assert info.splits[adv.SPLIT]["inputs"] == 15


def verify_counts(out) -> dict:
  return integrity.verify(str(out)).counts()


def test_resume_with_other_grouping_is_refused(tmp_path, first, bad_day,
                                               kmeans_codebook, lyra_dir,
                                               capsys):
  tree, _ = bad_day
  out = tmp_path / "out"
  shutil.copytree(first, out)
  before = _shards(out)
  assert _run(tree, out, kmeans_codebook, lyra_dir, "--group_seconds=0") == 2
  err = capsys.readouterr().err
  assert "group_seconds: committed None, this run 0.0" in err
  assert len(err.strip().splitlines()) == 1
  assert _shards(out) == before


def test_added_inputs_are_refused_then_redone_on_request(
    tmp_path, first, bad_day, kmeans_codebook, lyra_dir, clips_dir, capsys):
  tree, _ = bad_day
  grown = tmp_path / "grown"
  shutil.copytree(tree, grown, symlinks=True,
                  ignore=lambda d, names: [n for n in names if n.endswith(
                      "7000-100-0003.flac")])
  os.mkfifo(grown / adv.SPLIT / "7000" / "100" / "7000-100-0003.flac")
  # 2412-153948-0002 lands in a committed shard (same shards as before).
  (grown / adv.SPLIT / "2412" / "153948" / "2412-153948-0002.flac"
   ).write_bytes(adv.flac_bytes(adv.clip(clips_dir, "5703-47212-0000")))
  with open(grown / adv.SPLIT / "2412" / "153948" / "2412-153948.trans.txt",
            "a") as f:
    f.write("2412-153948-0002 PLACEHOLDER\n")
  out = tmp_path / "out"
  shutil.copytree(first, out)
  assert _run(grown, out, kmeans_codebook, lyra_dir) == 2
  err = capsys.readouterr().err
  assert "the corpus changed since" in err and "--redo_changed_shards" in err
  assert "dev-clean/2412/153948/2412-153948-0002.flac" in err
  assert _run(grown, out, kmeans_codebook, lyra_dir,
              "--redo_changed_shards") == 0
  recs = _records(out)
  assert "2412-153948-0002" in recs
  info = contract.DatasetInfo.load(str(out))
  assert info.splits[adv.SPLIT]["inputs"] == 16
  assert integrity.verify(str(out)).ok


KILL_SCRIPT = """
import sys
from audiolm_t5x.pipelines import tokenize_corpus
sys.exit(tokenize_corpus.main(sys.argv[1:]))
"""


def test_killed_job_lock_refuses_second_job_then_rerun_recovers(
    tmp_path, first, bad_day, kmeans_codebook, lyra_dir, capsys):
  tree, _ = bad_day
  out = tmp_path / "out"
  ready = tmp_path / "ready"
  env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2",
         "AUDIOLM_TEST_PAUSE_AFTER_COMMITS": f"1:{ready}"}
  proc = subprocess.Popen(
      [sys.executable, "-c", KILL_SCRIPT,
       *_args(tree, out, kmeans_codebook, lyra_dir)], env=env,
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  try:
    deadline = time.time() + 240
    while not ready.exists():
      assert proc.poll() is None, "the job ended before the kill point"
      assert time.time() < deadline
      time.sleep(0.5)
    # A second job on the same output refuses to start.
    assert _run(tree, out, kmeans_codebook, lyra_dir) == 2
    err = capsys.readouterr().err
    assert f"pid {proc.pid}" in err and "being written by another job" in err
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  assert os.path.exists(writer_lock.lock_path(str(out)))
  assert len(integrity.verify(str(out)).manifests) == 1
  assert _run(tree, out, kmeans_codebook, lyra_dir) == 0
  assert "taking over the writer lock" in capsys.readouterr().out
  assert _shards(out) == _shards(first)
  assert integrity.verify(str(out)).ok


def test_archives_bad_members_and_models_on_a_non_local_filesystem(
    tmp_path, clips_dir, first, kmeans_codebook, lyra_dir):
  from tests import memfs  # pylint: disable=g-import-not-at-top
  for name in ("soundstream_encoder.tflite", "quantizer.tflite",
               "lyragan.tflite"):
    memfs.FILES[f"memfs://models/lyra/{name}"] = (lyra_dir / name).read_bytes()
  memfs.FILES["memfs://models/kmeans.npz"] = kmeans_codebook.read_bytes()
  limit = 100_000
  expected = adv.build_archives(tmp_path / "archives", clips_dir, limit)
  out = tmp_path / "out"
  assert _job_module().main([
      f"--input_dir={tmp_path / 'archives'}", "--archives",
      f"--output_dir={out}", "--kmeans=memfs://models/kmeans.npz",
      "--lyra_dir=memfs://models/lyra", f"--num_shards={NUM_SHARDS}",
      f"--max_member_bytes={limit}", *LYRA_OPTIONS]) == 0
  recs = _records(out)
  assert set(recs) == expected["written"]
  reasons = sorted(d["reason"] for d in _dead(out).values())
  assert len(reasons) == 4, reasons
  for words in expected["dead_reasons"]:
    assert any(words in r for r in reasons), (words, reasons)
  assert any("notgzip.tar.gz" in p for p in _dead(out))
  # Models read through FileSystems give the same tokens as local files.
  ref = _records(first)
  for utt in ("2412-153948-0000", "2412-153948-0001", "1088-134315-0000"):
    np.testing.assert_array_equal(recs[utt].acoustic_tokens,
                                  ref[utt].acoustic_tokens)
    np.testing.assert_array_equal(recs[utt].semantic_tokens,
                                  ref[utt].semantic_tokens)


def _free_port() -> int:
  import socket  # pylint: disable=g-import-not-at-top
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def test_portable_runner_with_external_workers_is_byte_identical(
    tmp_path, first, bad_day, kmeans_codebook, lyra_dir):
  """Dataflow Runner v2's path: Fn API, SDK workers in other processes."""
  tree, _ = bad_day
  port = _free_port()
  env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}
  pool = subprocess.Popen(
      [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
       f"--service_port={port}"], env=env, stdout=subprocess.DEVNULL,
      stderr=subprocess.DEVNULL)
  try:
    out = tmp_path / "portable"
    assert _run(tree, out, kmeans_codebook, lyra_dir,
                "--runner=PortableRunner", "--job_endpoint=embed",
                "--environment_type=EXTERNAL",
                f"--environment_config=127.0.0.1:{port}") == 0
  finally:
    pool.kill()
    pool.wait()
  assert _shards(out) == _shards(first)
  assert _dead(out).keys() == _dead(first).keys()
