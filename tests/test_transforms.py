"""TestPipeline tests of each step of the tokenization job (read, tokenize, write)."""

from __future__ import annotations

import dataclasses
import json
import os

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
import numpy as np
import pytest

from audiolm_t5x import contract
from audiolm_t5x.pipelines import integrity
from audiolm_t5x.pipelines import sample_data
from audiolm_t5x.pipelines import read_corpus
from audiolm_t5x.pipelines import tokenize_audio
from audiolm_t5x.pipelines import write_shards
from audiolm_t5x.pipelines.tokenizers import base
from audiolm_t5x.pipelines.tokenizers import kmeans


class EnergyEmbedder(base.SemanticEmbedder):
  """Picklable fake: per-frame log energy and zero-crossing rate (2-d)."""

  dim = 2

  def info(self):
    return {"name": self.name, "fingerprint": "energy", "rate_hz": 25}

  def embed(self, waveform):
    n = waveform.shape[0] // 640
    frames = waveform[: n * 640].reshape(n, 640)
    energy = np.log(np.mean(frames**2, axis=1) + 1e-9)
    zcr = np.mean(np.abs(np.diff(np.sign(frames), axis=1)) > 0, axis=1)
    return np.stack([energy, zcr], axis=1).astype(np.float32)


class LevelCodes(base.AcousticTokenizer):
  """Picklable fake: 2 levels of 8 codes from per-frame amplitude."""

  levels = 2
  codebook_size = 8

  def info(self):
    return {"name": self.name, "fingerprint": "levels", "rate_hz": 50,
            "levels": 2, "codebook_size": 8}

  def encode(self, waveform):
    n = waveform.shape[0] // 320
    amp = np.abs(waveform[: n * 320].reshape(n, 320)).max(axis=1)
    q = np.clip((amp * 8 / 0.31).astype(np.int64), 0, 7)
    return np.stack([q, 7 - q], axis=1)


@pytest.fixture
def fake_backends():
  """Registers the fakes for one test; the registry is left as it was."""
  base.register_semantic("test_energy")(EnergyEmbedder)
  base.register_acoustic("test_levels")(LevelCodes)
  yield
  base.unregister(base.SEMANTIC, "test_energy")
  base.unregister(base.ACOUSTIC, "test_levels")


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
  root = tmp_path_factory.mktemp("sample")
  layout = {"dev-clean": {"9003": {"5": 3}}, "test-clean": {"9004": {"1": 1}}}
  sample_data.make_sample(str(root), layout=layout)
  os.remove(root / "test-clean" / "9004" / "1" / "9004-1.trans.txt")
  return root


@pytest.fixture(scope="module")
def codebook(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("km") / "km.npz")
  rng = np.random.default_rng(0)
  book = kmeans.fit_codebook(rng.normal(size=(400, 2)), k=4, seed=0)
  book.save(path)
  return path


def test_read_corpus_joins_transcripts_and_dead_letters_missing(sample):
  with TestPipeline() as p:
    items, dead = p | read_corpus.ReadCorpus(input_dir=str(sample))
    assert_that(items | "Ids" >> beam.Map(lambda it: (it.id, it.transcript)),
                equal_to([(f"9003-5-{i:04d}",
                           f"SYNTHETIC AUDIO NOT SPEECH NUMBER {i}")
                          for i in range(3)]), label="items")
    assert_that(dead | "Reasons" >> beam.Map(lambda d: (d.id, d.step)),
                equal_to([("9004-1-0000", "transcript")]), label="dead")


def test_read_corpus_groups_a_chapter_in_reading_order(sample):
  with TestPipeline() as p:
    items, _ = p | read_corpus.ReadCorpus(input_dir=str(sample),
                                         splits=["dev-clean"], group_seconds=0)
    assert_that(items | beam.Map(lambda it: (it.id, [r.stem for r in it.parts])),
                equal_to([("9003-5-0000_0002",
                           ["9003-5-0000", "9003-5-0001", "9003-5-0002"])]))


def test_tokenize_audio_with_fake_backends(sample, codebook, fake_backends):
  spec = tokenize_audio.TokenizerSpec(semantic="test_energy", codebook=codebook,
                                  acoustic="test_levels")
  with TestPipeline() as p:
    items, _ = p | read_corpus.ReadCorpus(input_dir=str(sample),
                                         splits=["dev-clean"])
    records, dead = items | tokenize_audio.TokenizeAudio(spec=spec, batch_size=2)

    def check(r):
      r.validate(semantic_codebook_size=4, acoustic_levels=2,
                 acoustic_codebook_size=8)
      return r.id, r.semantic_tokens.shape[0] == r.num_samples // 640

    assert_that(records | beam.Map(check),
                equal_to([(f"9003-5-{i:04d}", True) for i in range(3)]),
                label="records")
    assert_that(dead, equal_to([]), label="dead")


def test_overlapped_tokenize_emits_what_the_plain_one_does(
    sample, codebook, fake_backends, tmp_path):
  """overlap=True (models on a background thread, a batch's records emitted
  one call later or in finish_bundle) gives the records and dead letters of
  overlap=False; an undecodable file still becomes a dead letter."""
  (tmp_path / "bad.flac").write_bytes(b"not audio")
  spec = tokenize_audio.TokenizerSpec(semantic="test_energy", codebook=codebook,
                                      acoustic="test_levels")
  got = {}
  for overlap in (False, True):
    out = str(tmp_path / f"out{int(overlap)}")
    with TestPipeline() as p:
      items, _ = p | read_corpus.ReadCorpus(input_dir=str(sample),
                                           splits=["dev-clean"])
      bad = items | beam.combiners.Sample.FixedSizeGlobally(1) | beam.FlatMap(
          lambda its: [dataclasses.replace(
              its[0], id="bad", parts=(dataclasses.replace(
                  its[0].parts[0], path=str(tmp_path / "bad.flac"),
                  data=None),))])
      records, dead = ((items, bad) | "All" >> beam.Flatten()
                       | tokenize_audio.TokenizeAudio(
                           spec=spec, batch_size=2, overlap=overlap))
      _ = ((records | "R" >> beam.Map(lambda r: (
          "rec", r.id, r.semantic_tokens.tolist(),
          r.acoustic_tokens.tolist())),
            dead | "D" >> beam.Map(lambda d: ("dead", d.id, d.step)))
           | "Out" >> beam.Flatten() | beam.Map(json.dumps)
           | beam.io.WriteToText(out))
    got[overlap] = sorted(tuple(json.loads(line)[:2]) + (line,)
                          for f in sorted(tmp_path.glob(f"out{int(overlap)}*"))
                          for line in f.read_text().splitlines())
  assert got[True] == got[False]
  assert [g[:2] for g in got[True]] == [("dead", "bad")] + [
      ("rec", f"9003-5-{i:04d}") for i in range(3)]


def test_write_token_shards_sorts_and_commits(tmp_path):
  def rec(i):
    return contract.TokenRecord(
        id=f"u{i}", split="dev-clean", speaker_id=1, chapter_id=2, source="s",
        transcript="", num_samples=1280, semantic_tokens=np.array([i % 4, 1]),
        acoustic_tokens=np.zeros([4, 2], np.int64))
  letters = [contract.DeadLetter(path="/x/bad.flac", id="bad",
                                 split="dev-clean", step="decode",
                                 reason="empty file (0 bytes)")]
  with TestPipeline() as p:
    written = ((p | "R" >> beam.Create([rec(i) for i in range(7)]),
                p | "D" >> beam.Create(letters))
               | write_shards.WriteTokenShards(output_dir=str(tmp_path),
                                             num_shards=2,
                                             fingerprints={"a": "b"}))
    assert_that(written, equal_to([("dev-clean", 0), ("dev-clean", 1)]))
  manifests = write_shards.read_manifests(str(tmp_path))
  assert sum(m["records"] for m in manifests) == 7
  assert sum(m["failed"] for m in manifests) == 1
  for m in manifests:
    assert m["ids"] == sorted(m["ids"])
    for i in m["ids"]:
      assert write_shards.shard_of(i, 2) == m["shard"]
  summary = write_shards.summarize(manifests)["dev-clean"]
  assert summary["inputs"] == 8
  assert summary["failed_by_step"] == {"decode": 1}
  for m in manifests:
    data = open(tmp_path / "dev-clean" / m["file"], "rb").read()
    assert m["bytes"] == len(data) and len(m["sha256"]) == 64
  assert integrity.verify(str(tmp_path)).ok


def test_write_dataset_info_sums_manifests(tmp_path):
  info = contract.DatasetInfo(
      semantic={"name": "x", "codebook_size": 4, "fingerprint": "s"},
      acoustic={"name": "y", "levels": 2, "codebook_size": 8,
                "fingerprint": "a"})
  folder = tmp_path / "dev-clean"
  folder.mkdir()
  manifest = {"split": "dev-clean", "shard": 0, "num_shards": 1, "records": 2,
              "failed": 1, "num_samples": 32000, "semantic_tokens": 50,
              "acoustic_frames": 100, "dead_letters": [
                  {"path": "p", "id": "i", "split": "dev-clean",
                   "step": "decode", "reason": "r"}]}
  (folder / ("dev-clean-00000-of-00001" + write_shards.MANIFEST_SUFFIX)
   ).write_text(json.dumps(manifest))
  with TestPipeline() as p:
    out = (p | beam.Create([("dev-clean", 0)])
           | write_shards.WriteDatasetInfo(output_dir=str(tmp_path), info=info))
    assert_that(out | beam.Map(lambda s: s["dev-clean"]["inputs"]),
                equal_to([3]))
  loaded = contract.DatasetInfo.load(str(tmp_path))
  assert loaded.splits["dev-clean"]["hours"] == pytest.approx(2 / 3600, abs=1e-6)
  lines = (tmp_path / contract.DEAD_LETTER_FILENAME).read_text().splitlines()
  assert [json.loads(l)["reason"] for l in lines] == ["r"]


def test_read_corpus_librilight_layout(tmp_path):
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  rng = np.random.default_rng(0)
  book = tmp_path / "small" / "100" / "sea_fairies_0812_librivox"
  book.mkdir(parents=True)
  for name in ("01_baum_64kb", "02_baum_64kb"):
    sf.write(str(book / f"{name}.flac"), sample_data.synth_utterance(rng, 2.0),
             16000, format="FLAC")
    (book / f"{name}.json").write_text(json.dumps({"speaker": "100"}))
  with TestPipeline() as p:
    items, dead = p | read_corpus.ReadCorpus(input_dir=str(tmp_path),
                                            corpus="librilight")
    assert_that(items | beam.Map(lambda it: (it.id, it.speaker_id,
                                             it.chapter_id, it.transcript)),
                equal_to([("100/sea_fairies_0812_librivox/01_baum_64kb", 100,
                           -1, ""),
                          ("100/sea_fairies_0812_librivox/02_baum_64kb", 100,
                           -1, "")]), label="items")
    assert_that(dead, equal_to([]), label="dead")


def test_fake_backends_live_only_inside_the_fixture():
  assert "test_levels" not in base.acoustic_backends()
  assert "test_energy" not in base.semantic_backends()
  base.register_acoustic("test_tmp")(type("Tmp", (LevelCodes,), {}))
  assert "test_tmp" in base.contract_acoustic_backends()  # 50 Hz by default
  base.unregister(base.ACOUSTIC, "test_tmp")
  assert "test_tmp" not in base.acoustic_backends()
