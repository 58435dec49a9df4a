"""Data-safety rules, one library function at a time (fast, no Beam job).

The same rules run end to end through the real job in
``test_data_safety_job.py``.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import tarfile
import time

import numpy as np
import pytest
import soundfile as sf

from audiolm_t5x.pipelines import audio
from audiolm_t5x.pipelines import corpus
from audiolm_t5x.pipelines import integrity
from audiolm_t5x.pipelines import staging
from audiolm_t5x.pipelines import writer_lock
from tests import memfs

RATE = 16000


def _tone(seconds=1.0, amp=0.3):
  t = np.arange(int(seconds * RATE)) / RATE
  return (amp * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _flac_bytes(x):
  buf = io.BytesIO()
  sf.write(buf, x, RATE, format="FLAC", subtype="PCM_16")
  return buf.getvalue()


# --- listing -----------------------------------------------------------------


@pytest.fixture()
def odd_tree(tmp_path):
  root = tmp_path / "corpus"
  chap = root / "dev-clean" / "7" / "8"
  chap.mkdir(parents=True)
  (chap / "7-8-0000.FLAC").write_bytes(_flac_bytes(_tone()))
  (chap / "7-8-0001.flac").mkdir()
  (chap / "7-8-0002.flac").symlink_to(chap / "nowhere.flac")
  os.mkfifo(chap / "7-8-0003.flac")
  outside = tmp_path / "outside.flac"
  outside.write_bytes(_flac_bytes(_tone()))
  (chap / "7-8-0004.flac").symlink_to(outside)
  (chap / "7-8-0005.flac").symlink_to(chap / "7-8-0000.FLAC")
  (chap / "7-8.TRANS.TXT").write_text("7-8-0000 A\n")
  (chap / "notes.txt").write_text("not a candidate")
  (root / "dev-clean" / "stray.wav").write_bytes(b"")
  ext = tmp_path / "ext_speaker"
  (ext / "9").mkdir(parents=True)
  (ext / "9" / "9-9-0000.flac").write_bytes(_flac_bytes(_tone()))
  (root / "dev-clean" / "9").symlink_to(ext)
  (root / "dev-clean" / "loop").symlink_to(root / "dev-clean")
  return root


def test_listing_accounts_for_every_candidate_and_never_opens_a_fifo(odd_tree):
  start = time.time()
  entries = corpus.list_inputs(str(odd_tree))
  assert time.time() - start < 5  # a FIFO opened would block forever
  got = {e.rel: (e.kind, e.problem) for e in entries}
  base = "dev-clean/7/8/"
  assert set(got) == {base + n for n in (
      "7-8-0000.FLAC", "7-8-0001.flac", "7-8-0002.flac", "7-8-0003.flac",
      "7-8-0004.flac", "7-8-0005.flac", "7-8.TRANS.TXT")} | {
          "dev-clean/stray.wav", "dev-clean/9"}
  assert got[base + "7-8-0000.FLAC"] == ("audio", None)
  assert got[base + "7-8-0005.flac"] == ("audio", None)  # link inside: read
  assert got[base + "7-8.TRANS.TXT"] == ("text", None)
  assert got["dev-clean/stray.wav"] == ("audio", None)  # layout: checked later
  assert got[base + "7-8-0001.flac"][1] == "is a folder, not a file"
  assert got[base + "7-8-0002.flac"][1].startswith("dangling link (to ")
  assert got[base + "7-8-0003.flac"][1] == (
      "is a FIFO, not a regular file (never opened)")
  assert "outside the corpus" in got[base + "7-8-0004.flac"][1]
  assert "--follow_external_links" in got[base + "7-8-0004.flac"][1]
  assert got["dev-clean/9"][1].startswith("link to the folder ")
  followed = {e.rel: e.problem for e in corpus.list_inputs(
      str(odd_tree), follow_external_links=True)}
  assert followed[base + "7-8-0004.flac"] is None
  assert followed["dev-clean/9/9/9-9-0000.flac"] is None
  with pytest.raises(corpus.CorpusError, match="split 'nope' not found"):
    corpus.list_inputs(str(odd_tree), splits=["nope"])


def test_inputs_by_shard_puts_a_transcript_with_its_chapters_audio():
  entries = [corpus.Entry("/r/" + rel, rel, kind) for rel, kind in (
      ("s/1/2/1-2-0000.flac", "audio"), ("s/1/2/1-2-0001.flac", "audio"),
      ("s/1/2/1-2.trans.txt", "text"), ("s/1/2/1-2-0001.wav", "audio"),
      ("x.flac", "audio"))]
  shards = corpus.inputs_by_shard(entries, corpus="librispeech",
                                  grouped=False, num_shards=4)
  where = {rel: k for k, rels in shards.items() for rel in rels
           if rel.endswith((".flac", ".wav"))}
  # Both sources of id 1-2-0001 land in one shard (duplicates meet there).
  assert where["s/1/2/1-2-0001.flac"] == where["s/1/2/1-2-0001.wav"]
  assert where["x.flac"][0] == corpus.OTHER_SPLIT
  holding_text = {k for k, rels in shards.items() if "s/1/2/1-2.trans.txt" in rels}
  assert holding_text == {where["s/1/2/1-2-0000.flac"],
                          where["s/1/2/1-2-0001.flac"]}
  grouped = corpus.inputs_by_shard(entries, corpus="librispeech",
                                   grouped=True, num_shards=4)
  assert len([k for k in grouped if k[0] == "s"]) == 1


# --- archives ----------------------------------------------------------------


def _tar_gz(members):
  buf = io.BytesIO()
  with tarfile.open(fileobj=buf, mode="w:gz") as tar:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      tar.addfile(info, io.BytesIO(data))
  return buf.getvalue()


def test_archive_problems_are_named_and_memory_stays_bounded():
  flac = _flac_bytes(_tone())
  good = _tar_gz([("LS/dev-clean/1/2/1-2-0000.flac", flac),
                  ("LS/dev-clean/1/2/1-2.trans.txt", b"1-2-0000 \xff\n"),
                  ("LS/dev-clean/1/2/1-2-0001.flac", bytes(3 << 20)),
                  ("LS/dev-clean/1/2/1-2-0002.flac", flac)])
  items = list(corpus.iter_archive(io.BytesIO(good), max_member_bytes=1 << 20))
  assert [(k, n) for k, _, n in items] == [
      ("audio", "LS/dev-clean/1/2/1-2-0000.flac"),
      ("transcript", "LS/dev-clean/1/2/1-2.trans.txt"),
      ("refused", "LS/dev-clean/1/2/1-2-0001.flac"),
      ("audio", "LS/dev-clean/1/2/1-2-0002.flac")]
  assert "declares 3145728 bytes, over the limit of 1048576" in items[2][1]
  with pytest.raises(corpus.CorpusError, match=r"x.trans.txt: not UTF-8 "
                     r"\(byte 0xff at offset 9\)"):
    corpus.decode_transcript(items[1][1], path="x.trans.txt")
  # Truncated: the members before the cut are kept, then one "broken" item.
  cut = list(corpus.iter_archive(io.BytesIO(good[: len(good) - 2000])))
  assert cut[0][0] == "audio" and cut[-1][0] == "broken"
  assert "truncated or not a readable tar(.gz) after member" in cut[-1][1]
  assert [k for k, _, _ in corpus.iter_archive(
      io.BytesIO(b"not an archive at all" * 100))] == ["broken"]
  # A corrupt header after the first member (tarfile alone stops quietly).
  raw = io.BytesIO()
  with tarfile.open(fileobj=raw, mode="w") as tar:
    for name in ("a/b/c/1-1-0000.flac", "a/b/c/1-1-0001.flac"):
      info = tarfile.TarInfo(name)
      info.size = len(flac)
      tar.addfile(info, io.BytesIO(flac))
  data = bytearray(raw.getvalue())
  second = 512 + (len(flac) + 511) // 512 * 512
  data[second: second + 100] = b"\x07" * 100
  kinds = [k for k, _, _ in corpus.iter_archive(io.BytesIO(bytes(data)))]
  assert kinds == ["audio", "broken"]


# --- audio -------------------------------------------------------------------


def test_non_finite_and_mislabelled_audio_fail_levels_are_measured(tmp_path):
  x = _tone(1.0)
  x[100] = np.nan
  buf = io.BytesIO()
  sf.write(buf, x, RATE, format="WAV", subtype="FLOAT")
  with pytest.raises(audio.AudioError, match="non-finite samples .* at "
                     "sample 100"):
    audio.decode(buf.getvalue(), suffix=".wav")
  mp3 = io.BytesIO()
  sf.write(mp3, _tone(1.0), RATE, format="MP3")
  with pytest.raises(audio.FormatMismatchError,
                     match="content is MP3 but the name ends in .flac"):
    audio.decode(mp3.getvalue(), suffix=".flac")
  for scale, flags in ((1.0, ()), (10.0, ("clipped", "loud")),
                       (0.002, ("quiet",))):
    stats = audio.AudioStats()
    audio.decode(_flac_bytes(np.clip(_tone(1.0) * scale, -1, 1)),
                 stats=stats, suffix=".flac")
    assert audio.level_flags([stats]) == flags, scale


# --- writer lock -------------------------------------------------------------


def test_second_writer_refused_and_stale_locks_recovered(tmp_path):
  out = str(tmp_path / "out")
  notes = []
  with writer_lock.WriterLock(out, command="job A", log=notes.append):
    with pytest.raises(writer_lock.LockHeldError,
                       match=rf"being written by another job \(host "
                       rf"{socket.gethostname()}, pid {os.getpid()}, .*job A"):
      writer_lock.WriterLock(out, command="job B").acquire()
  assert not os.path.exists(writer_lock.lock_path(out))
  # A holder killed with SIGKILL: same host, pid gone -> taken over.
  dead = subprocess.Popen(["true"])
  dead.wait()
  path = writer_lock.lock_path(out)
  holder = {"token": "x", "host": socket.gethostname(), "pid": dead.pid,
            "command": "old", "started_unix": 0, "heartbeat_unix": time.time()}
  with open(path, "w") as f:
    json.dump(holder, f)
  with writer_lock.WriterLock(out, log=notes.append):
    pass
  assert f"its process {dead.pid} on this host is gone" in notes[-1]
  # Another host: alive until its heartbeat is older than stale_seconds.
  holder.update(host="elsewhere", heartbeat_unix=time.time() - 100)
  with open(path, "w") as f:
    json.dump(holder, f)
  with pytest.raises(writer_lock.LockHeldError, match="--break_lock"):
    writer_lock.WriterLock(out, stale_seconds=1000).acquire()
  with writer_lock.WriterLock(out, stale_seconds=50, log=notes.append):
    pass
  assert "heartbeat is 100 s old" in notes[-1]
  with open(path, "w") as f:
    json.dump({**holder, "heartbeat_unix": time.time()}, f)
  with writer_lock.WriterLock(out, break_lock=True, log=notes.append):
    pass
  assert "--break_lock was given" in notes[-1]


# --- integrity ---------------------------------------------------------------


def _commit(out, split, index, data):
  name = f"{split}-{index:05d}-of-00004.tfrecord"
  os.makedirs(os.path.join(out, split), exist_ok=True)
  with open(os.path.join(out, split, name), "wb") as f:
    f.write(data)
  import hashlib  # pylint: disable=g-import-not-at-top
  manifest = {"split": split, "shard": index, "num_shards": 4, "file": name,
              "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
              "records": 1, "failed": 0, "ids": ["a"]}
  with open(os.path.join(out, split, name.replace(".tfrecord",
                                                  ".manifest.json")), "w") as f:
    json.dump(manifest, f)
  return os.path.join(out, split, name)


def test_verify_finds_missing_corrupt_orphan_temporary_and_extra(tmp_path):
  out = str(tmp_path)
  a = _commit(out, "dev", 0, b"a" * 100)
  b = _commit(out, "dev", 1, b"b" * 100)
  c = _commit(out, "dev", 2, b"c" * 100)
  assert integrity.verify(out).ok
  assert integrity.committed_shards(out, ["dev"]) == [a, b, c]
  with open(b, "r+b") as f:
    f.write(b"B")  # same size, other bytes
  os.remove(c)
  open(os.path.join(out, "dev", "dev-00003-of-00004.tfrecord"), "wb").close()
  open(a + ".tmp-123", "wb").close()
  open(os.path.join(out, "dev", "notes.md"), "wb").close()
  report = integrity.verify(out)
  assert sorted((p.kind, os.path.basename(p.path)) for p in report.problems) == [
      ("corrupt", "dev-00001-of-00004.tfrecord"),
      ("extra", "notes.md"),
      ("missing", "dev-00002-of-00004.tfrecord"),
      ("orphan", "dev-00003-of-00004.tfrecord"),
      ("temporary", "dev-00000-of-00004.tfrecord.tmp-123")]
  assert integrity.verify(out, check="size").counts() == {
      "extra": 1, "missing": 1, "orphan": 1, "temporary": 1}
  with pytest.raises(integrity.CorruptShardError,
                     match=r"dev-00001-of-00004.tfrecord: corrupt shard"):
    integrity.committed_shards(out, ["dev"], check="sha256")


def test_verify_command_exit_codes(tmp_path, capsys):
  from audiolm_t5x.pipelines import verify  # pylint: disable=g-import-not-at-top

  assert verify.main([f"--output_dir={tmp_path}"]) == 2
  assert "holds no shard manifests" in capsys.readouterr().err
  _commit(str(tmp_path), "dev", 0, b"x" * 10)
  assert verify.main([f"--output_dir={tmp_path}"]) == 0
  assert "1 committed shards (sha256 checked), 1 records" in (
      capsys.readouterr().out)
  os.remove(tmp_path / "dev" / "dev-00000-of-00004.tfrecord")
  assert verify.main([f"--output_dir={tmp_path}"]) == 1
  assert "missing: " in capsys.readouterr().out


# --- staging -----------------------------------------------------------------


def test_staging_copies_a_non_local_file_once(tmp_path, monkeypatch):
  monkeypatch.setenv(staging.ENV_VAR, str(tmp_path / "stage"))
  monkeypatch.setattr(staging, "_STAGED", {})
  memfs.FILES["memfs://bucket/models/book.npz"] = b"0123456789"
  memfs.OPENED.clear()
  first = staging.local_path("memfs://bucket/models/book.npz")
  second = staging.local_path("memfs://bucket/models/book.npz")
  assert first == second and first.startswith(str(tmp_path / "stage"))
  assert open(first, "rb").read() == b"0123456789"
  assert memfs.OPENED == ["memfs://bucket/models/book.npz"]
  # Another process of the worker (empty in-process cache) reuses the copy.
  monkeypatch.setattr(staging, "_STAGED", {})
  assert staging.local_path("memfs://bucket/models/book.npz") == first
  assert memfs.OPENED == ["memfs://bucket/models/book.npz"]
  assert staging.local_path(str(tmp_path)) == str(tmp_path)


def test_staging_copies_again_a_model_rewritten_in_place(tmp_path,
                                                         monkeypatch):
  """A refitted codebook has the same size; the stale copy must not be used."""
  monkeypatch.setenv(staging.ENV_VAR, str(tmp_path / "stage"))
  monkeypatch.setattr(staging, "_STAGED", {})
  path = "memfs://bucket/models/refit.npz"
  memfs.FILES[path] = b"old-codebook"
  first = staging.local_path(path)
  assert open(first, "rb").read() == b"old-codebook"
  memfs.FILES[path] = b"new-codebook"  # same size, new bytes
  # The same process, then another process of the worker (empty cache).
  assert open(staging.local_path(path), "rb").read() == b"new-codebook"
  monkeypatch.setattr(staging, "_STAGED", {})
  memfs.FILES[path] = b"third-codes!"
  memfs.OPENED.clear()
  assert open(staging.local_path(path), "rb").read() == b"third-codes!"
  assert staging.local_path(path) == first and memfs.OPENED == [path]


# --- the job's transforms (TestPipeline) ------------------------------------


def test_read_corpus_dead_letters_what_it_must_not_open(odd_tree):
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.testing.test_pipeline import TestPipeline  # pylint: disable=g-import-not-at-top
  from apache_beam.testing.util import assert_that, equal_to  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines import read_corpus  # pylint: disable=g-import-not-at-top

  with TestPipeline() as p:
    items, dead = p | read_corpus.ReadCorpus(input_dir=str(odd_tree))
    assert_that(items | "Ids" >> beam.Map(lambda it: it.id),
                equal_to(["7-8-0000"]), label="items")
    assert_that(dead | "Dead" >> beam.Map(
        lambda d: (os.path.basename(d.path), d.split, d.step)),
        equal_to([("7-8-0001.flac", "dev-clean", "read"),
                  ("7-8-0002.flac", "dev-clean", "read"),
                  ("7-8-0003.flac", "dev-clean", "read"),
                  ("7-8-0004.flac", "dev-clean", "read"),
                  ("7-8-0005.flac", "dev-clean", "transcript"),
                  ("9", corpus.OTHER_SPLIT, "read"),
                  ("stray.wav", corpus.OTHER_SPLIT, "read")]), label="dead")


def test_drop_duplicate_ids_keeps_the_first_source():
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.testing.test_pipeline import TestPipeline  # pylint: disable=g-import-not-at-top
  from apache_beam.testing.util import assert_that, equal_to  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines import unique_ids  # pylint: disable=g-import-not-at-top

  def item(split, path):
    ref = corpus.audio_ref(path, "/r", rel=path[3:])
    return corpus.WorkItem(id=ref.stem, split=split, speaker_id=1,
                           chapter_id=2, transcript="", parts=(ref,))
  items = [item("train", "/r/train/1/2/1-2-0000.flac"),
           item("dev", "/r/dev/1/2/1-2-0000.flac"),
           item("dev", "/r/dev/1/2/1-2-0001.flac")]
  with TestPipeline() as p:
    kept, dead = p | beam.Create(items) | unique_ids.DropDuplicateIds()
    assert_that(kept | "K" >> beam.Map(lambda it: (it.split, it.id)),
                equal_to([("dev", "1-2-0000"), ("dev", "1-2-0001")]),
                label="kept")
    assert_that(dead | "D" >> beam.Map(lambda d: (d.split, d.step, d.reason)),
                equal_to([("train", "duplicate", corpus.duplicate_reason(
                    "1-2-0000", "/r/dev/1/2/1-2-0000.flac"))]), label="dead")


def test_writer_dead_letters_an_input_nothing_accounted_for(tmp_path):
  import apache_beam as beam  # pylint: disable=g-import-not-at-top
  from apache_beam.testing.test_pipeline import TestPipeline  # pylint: disable=g-import-not-at-top
  from audiolm_t5x import contract  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.pipelines import write_shards  # pylint: disable=g-import-not-at-top

  keys = write_shards.ShardKeys(num_shards=1, root="/r")
  rec = contract.TokenRecord(
      id="1-2-0000", split="dev", speaker_id=1, chapter_id=2,
      source="dev/1/2/1-2-0000.flac", transcript="", num_samples=640,
      semantic_tokens=np.array([0]), acoustic_tokens=np.zeros([2, 1]))
  inputs = [(("dev", 0), "dev/1/2/1-2-0000.flac"),
            (("dev", 0), "dev/1/2/1-2-0001.flac"),
            (("dev", 0), "dev/1/2/1-2.trans.txt")]
  with TestPipeline() as p:
    _ = ((p | "R" >> beam.Create([rec]), p | "D" >> beam.Create([]),
          p | "I" >> beam.Create(inputs))
         | write_shards.WriteTokenShards(output_dir=str(tmp_path),
                                         num_shards=1, fingerprints={},
                                         keys=keys))
  (m,) = integrity.verify(str(tmp_path)).manifests.values()
  assert m["inputs"] == [i for _, i in inputs]
  assert [(d["path"], d["step"]) for d in m["dead_letters"]] == [
      ("/r/dev/1/2/1-2-0001.flac", "internal")]
  assert m["records"] + m["failed"] == 2
