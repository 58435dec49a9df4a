"""Registry and end-to-end tests of the AudioLM SeqIO tasks."""

import json
import os

import gin
import numpy as np
import pytest
import seqio
import tensorflow as tf

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.tasks import audiolm
from audiolm_t5x.tasks import stages
from audiolm_t5x.tasks import vocabulary

SPEECH_TASKS = (audiolm.SEMANTIC_TASK, audiolm.COARSE_TASK, audiolm.FINE_TASK)
PIANO_TASKS = (audiolm.PIANO_SEMANTIC_TASK, audiolm.PIANO_ACOUSTIC_TASK)
PROMPT_TASKS = (audiolm.SEMANTIC_PROMPT_TASK,
                audiolm.PIANO_SEMANTIC_PROMPT_TASK)
PROMPT_STEPS = int(constants.PROMPT_SECONDS * constants.SEMANTIC_RATE_HZ)
CONTINUATION_STEPS = int(constants.CONTINUATION_SECONDS *
                         constants.SEMANTIC_RATE_HZ)
ENV_VARS = ("AUDIOLM_DATA_DIR", "AUDIOLM_PIANO_DATA_DIR",
            "AUDIOLM_TRAIN_SPLITS", "AUDIOLM_VALIDATION_SPLITS")


def _commit(path, split, shard):
  """Writes the shard's manifest, as the job does (readers read only those)."""
  import hashlib  # pylint: disable=g-import-not-at-top
  data = open(path, "rb").read()
  manifest = {"split": split, "shard": shard, "num_shards": 2,
              "file": os.path.basename(path), "bytes": len(data),
              "sha256": hashlib.sha256(data).hexdigest()}
  with open(path[: -len(contract.SHARD_SUFFIX)] + ".manifest.json", "w") as f:
    json.dump(manifest, f)


def write_dataset(root, *, lengths, k=16, q=12, n=64, seed=0):
  """Writes contract records + dataset_info.json; returns {split: records}."""
  rng = np.random.default_rng(seed)
  records, counts = {}, {}
  for split, sample_counts in lengths.items():
    os.makedirs(os.path.join(root, split), exist_ok=True)
    records[split] = []
    for shard in range(2):
      name = os.path.join(root, split, contract.shard_name(split, shard, 2))
      with tf.io.TFRecordWriter(name) as w:
        for i, ns in enumerate(sample_counts[shard::2]):
          rec = contract.TokenRecord(
              id=f"{split}-{shard}-{i}", split=split, speaker_id=1,
              chapter_id=2, source="x.flac", transcript="", num_samples=ns,
              semantic_tokens=rng.integers(0, k, ns // 640),
              acoustic_tokens=rng.integers(0, n, (ns // 320, q)))
          w.write(rec.to_example_bytes())
          records[split].append(rec)
      _commit(name, split, shard)
    counts[split] = {"records": len(sample_counts)}
  info = contract.DatasetInfo(
      semantic={"name": "test", "fingerprint": "s", "codebook_size": k,
                "rate_hz": constants.SEMANTIC_RATE_HZ},
      acoustic={"name": "test", "fingerprint": "a", "levels": q,
                "codebook_size": n, "rate_hz": constants.ACOUSTIC_RATE_HZ},
      splits=counts)
  with open(os.path.join(root, contract.DATASET_INFO_FILENAME), "w") as f:
    f.write(info.to_json())
  return records


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
  for var in ENV_VARS:
    monkeypatch.delenv(var, raising=False)
  gin.clear_config()
  yield
  gin.clear_config()


SECONDS = constants.SAMPLE_RATE
# train: 4 s, 12.3 s, 40 s (longer than every crop); dev-clean: 2 s.
LENGTHS = {"train-clean-100": [4 * SECONDS, int(12.3 * SECONDS), 40 * SECONDS],
           "dev-clean": [2 * SECONDS + 333]}


@pytest.fixture
def speech_dir(tmp_path, monkeypatch):
  records = write_dataset(str(tmp_path), lengths=LENGTHS)
  monkeypatch.setenv("AUDIOLM_DATA_DIR", str(tmp_path))
  return tmp_path, records


def _examples(task, split="train", seed=0, lengths=None):
  lengths = lengths or audiolm.TASK_FEATURE_LENGTHS[task]
  ds = seqio.get_mixture_or_task(task).get_dataset(
      lengths, split=split, shuffle=False, seed=seed)
  return list(ds.as_numpy_iterator())


def _dedup(x):
  x = np.asarray(x)
  return x[np.r_[True, x[1:] != x[:-1]]] if x.size else x


def _find_crop(record, n_steps, acoustic_lm):
  """Start steps whose acoustic frames match the example's (brute force)."""
  return [s for s in range(len(record.semantic_tokens) - n_steps + 1)
          if np.array_equal(record.acoustic_tokens[2 * s:2 * (s + n_steps)],
                            acoustic_lm)]


# --- registry ------------------------------------------------------------------
def test_tasks_registered_with_expected_features_and_lengths():
  for name in SPEECH_TASKS + PIANO_TASKS + PROMPT_TASKS:
    task = seqio.get_mixture_or_task(name)
    expect = ({"targets"} if name in (audiolm.SEMANTIC_TASK,
                                      audiolm.PIANO_SEMANTIC_TASK)
              else {"inputs", "targets"})
    assert set(task.output_features) == expect
    for feature in task.output_features.values():
      assert feature.vocabulary.vocab_size == audiolm.VOCAB_SIZES[name]
      assert feature.vocabulary.eos_id == constants.EOS_ID
    assert set(audiolm.TASK_FEATURE_LENGTHS[name]) == expect
    assert set(task.splits) == {"train", "validation"}
  lengths = audiolm.TASK_FEATURE_LENGTHS
  assert lengths[audiolm.SEMANTIC_TASK] == {"targets": 751}
  assert lengths[audiolm.COARSE_TASK] == {"inputs": 250, "targets": 2001}
  assert lengths[audiolm.FINE_TASK] == {"inputs": 600, "targets": 1201}
  assert lengths[audiolm.PIANO_ACOUSTIC_TASK] == {"inputs": 250,
                                                  "targets": 1501}
  for name in PROMPT_TASKS:  # 3 s x 25 Hz in; the other 7 s of 10 s + EOS out
    assert lengths[name] == {"inputs": 75, "targets": 176}
    assert audiolm.TASK_STAGES[name][1] == stages.SEMANTIC_PROMPT
  assert audiolm.VOCAB_SIZES[audiolm.COARSE_TASK] == 13440
  assert seqio.get_mixture_or_task(audiolm.ACOUSTIC_MIXTURE).tasks


def test_building_a_dataset_without_data_dir_says_how_to_set_it():
  with pytest.raises(ValueError, match="AUDIOLM_DATA_DIR"):
    _examples(audiolm.SEMANTIC_TASK)
  with pytest.raises(ValueError, match="AUDIOLM_PIANO_DATA_DIR"):
    _examples(audiolm.PIANO_SEMANTIC_TASK)


# --- end to end on tiny records -------------------------------------------------
def test_semantic_task_crops_dedups_and_ends(speech_dir):
  _, records = speech_dir
  by_len = {len(r.semantic_tokens): r for r in records["train-clean-100"]}
  examples = _examples(audiolm.SEMANTIC_TASK)
  assert len(examples) == 3
  layout = vocabulary.VocabularyLayout(16, 12, 64)
  for ex in examples:
    t = ex["targets"]
    assert t.dtype == np.int32 and len(t) <= 751
    body = t[:-1] if t[-1] == constants.EOS_ID else t
    assert np.all((body >= layout.semantic_offset) &
                  (body < layout.acoustic_base))
    assert np.all(body[1:] != body[:-1])  # no consecutive repeats
  # Short records (4 s, 12.3 s) are kept whole, deduplicated, with EOS.
  got = sorted(ex["targets"].tolist() for ex in examples)
  for steps in (100, 307):
    want = _dedup(by_len[steps].semantic_tokens + 2).tolist() + [1]
    assert want in got
  # The 40 s record (1000 frames) gives a 30 s crop: the deduplication of one
  # 750-frame window, with EOS only if the window is the last one.
  long_rec = by_len[1000]
  (long_ex,) = [t for t in got if t not in [
      _dedup(by_len[s].semantic_tokens + 2).tolist() + [1] for s in (100,
                                                                     307)]]
  has_eos = long_ex[-1] == constants.EOS_ID
  body = long_ex[:-1] if has_eos else long_ex
  starts = [s for s in range(1000 - 750 + 1)
            if _dedup(long_rec.semantic_tokens[s:s + 750] + 2).tolist() == body]
  assert starts and has_eos == (starts[-1] == 250)


def test_coarse_task_aligns_semantic_and_acoustic_crops(speech_dir):
  _, records = speech_dir
  layout = vocabulary.VocabularyLayout(16, 12, 64)
  q_coarse = constants.COARSE_LEVELS
  offsets = np.array([layout.acoustic_offset(q) for q in range(q_coarse)])
  examples = _examples(audiolm.COARSE_TASK, seed=3)
  assert len(examples) == 3
  for ex in examples:
    eos = ex["targets"][-1] == constants.EOS_ID
    flat = ex["targets"][:-1] if eos else ex["targets"]
    assert len(flat) % q_coarse == 0
    frames = flat.reshape(-1, q_coarse) - offsets  # level q at q * N
    assert frames.min() >= 0 and frames.max() < 64
    steps = len(frames) // 2
    assert steps <= 250
    # Find the crop by the coarse levels of the records.
    found = []
    for r in records["train-clean-100"]:
      for s in range(len(r.semantic_tokens) - steps + 1):
        if np.array_equal(r.acoustic_tokens[2 * s:2 * (s + steps), :q_coarse],
                          frames):
          found.append((r, s))
    assert len(found) == 1, "targets are not a frame-aligned crop"
    rec, start = found[0]
    np.testing.assert_array_equal(
        ex["inputs"],
        _dedup(rec.semantic_tokens[start:start + steps]) + 2)
    assert eos == (start + steps == len(rec.semantic_tokens))


def test_fine_task_splits_levels_of_one_crop(speech_dir):
  _, records = speech_dir
  layout = vocabulary.VocabularyLayout(16, 12, 64)
  qc = constants.COARSE_LEVELS
  examples = _examples(audiolm.FINE_TASK, seed=5)
  assert len(examples) == 3
  for ex in examples:
    eos = ex["targets"][-1] == constants.EOS_ID
    fine = (ex["targets"][:-1] if eos else ex["targets"]).reshape(-1, 12 - qc)
    coarse = ex["inputs"].reshape(-1, qc)
    assert len(fine) == len(coarse) == 150  # 3 s x 50 Hz; records are longer
    both = np.concatenate([coarse, fine], axis=1) - np.array(
        [layout.acoustic_offset(q) for q in range(12)])
    hits = [(r, f) for r in records["train-clean-100"]
            for f in range(0, len(r.acoustic_tokens) - 150 + 1, 2)
            if np.array_equal(r.acoustic_tokens[f:f + 150], both)]
    assert len(hits) == 1
    rec, f0 = hits[0]
    assert eos == (f0 // 2 + 75 == len(rec.semantic_tokens))


def test_crops_are_reproducible_and_fresh_per_seed(speech_dir):
  a = _examples(audiolm.COARSE_TASK, seed=11)
  b = _examples(audiolm.COARSE_TASK, seed=11)
  c = _examples(audiolm.COARSE_TASK, seed=12)
  key = lambda exs: [e["targets"].tolist() for e in exs]
  assert key(a) == key(b)
  assert key(a) != key(c)  # the 40 s and 12.3 s records get other crops


def test_validation_split_maps_to_dev_clean(speech_dir):
  examples = _examples(audiolm.SEMANTIC_TASK, split="validation")
  assert len(examples) == 1 and examples[0]["targets"][-1] == 1
  assert seqio.get_mixture_or_task(
      audiolm.SEMANTIC_TASK).num_input_examples("train") == 3


def test_split_env_override_and_unknown_split(speech_dir, monkeypatch):
  monkeypatch.setenv("AUDIOLM_TRAIN_SPLITS", "dev-clean")
  assert len(_examples(audiolm.SEMANTIC_TASK)) == 1
  monkeypatch.setenv("AUDIOLM_TRAIN_SPLITS", "train-other-500")
  with pytest.raises(ValueError, match="train-other-500"):
    _examples(audiolm.SEMANTIC_TASK)


def test_gin_overrides_crop_and_coarse_levels(speech_dir):
  gin.parse_config("""
      audiolm_tasks.speech_corpus.coarse_crop_seconds = 1.0
      audiolm_tasks.speech_corpus.coarse_levels = 2
  """)
  for ex in _examples(audiolm.COARSE_TASK):
    assert len(ex["inputs"]) <= 25
    assert len(ex["targets"]) in (100, 101)  # 50 frames x 2 levels (+EOS)


def test_gin_data_dir_beats_environment(speech_dir, tmp_path_factory,
                                         monkeypatch):
  other = tmp_path_factory.mktemp("other")
  write_dataset(str(other), lengths={"train-clean-360": [SECONDS],
                                     "dev-clean": [SECONDS]})
  gin.bind_parameter("audiolm_tasks.speech_corpus.data_dir", str(other))
  assert len(_examples(audiolm.SEMANTIC_TASK)) == 1


def test_dataset_too_large_for_vocabulary_is_refused(tmp_path, monkeypatch):
  write_dataset(str(tmp_path), lengths={"train-clean-100": [SECONDS],
                                        "dev-clean": [SECONDS]},
                q=12, n=2048)
  monkeypatch.setenv("AUDIOLM_DATA_DIR", str(tmp_path))
  with pytest.raises(ValueError, match=r"need 24594 LM ids.*13440"):
    _examples(audiolm.SEMANTIC_TASK)


def test_piano_tasks_predict_all_levels(tmp_path, monkeypatch):
  n = constants.PIANO_ACOUSTIC_CODEBOOK_SIZE
  records = write_dataset(str(tmp_path), lengths={
      "train": [12 * SECONDS], "dev-clean": [SECONDS]}, k=1024, q=3, n=n)
  monkeypatch.setenv("AUDIOLM_PIANO_DATA_DIR", str(tmp_path))
  layout = vocabulary.PIANO_LAYOUT
  (ex,) = _examples(audiolm.PIANO_ACOUSTIC_TASK)
  assert len(ex["inputs"]) <= 250 and len(ex["targets"]) in (1500, 1501)
  frames = ex["targets"][:1500].reshape(-1, 3) - np.array(
      [layout.acoustic_offset(q) for q in range(3)])
  rec = records["train"][0]
  assert _find_crop(rec, 250, frames)
  (sem,) = _examples(audiolm.PIANO_SEMANTIC_TASK)
  assert np.array_equal(sem["targets"], np.r_[_dedup(rec.semantic_tokens + 2),
                                              1])
  (prompt,) = _examples(audiolm.PIANO_SEMANTIC_PROMPT_TASK)
  joined = np.r_[prompt["inputs"], prompt["targets"]]
  starts = [s for s in range(300 - CONTINUATION_STEPS + 1)  # 12 s x 25 Hz
            if np.array_equal(_dedup(rec.semantic_tokens[
                s:s + CONTINUATION_STEPS] + 2), joined[:len(joined) - (
                    joined[-1] == constants.EOS_ID)])]
  assert starts
  np.testing.assert_array_equal(prompt["inputs"], _dedup(
      rec.semantic_tokens[starts[0]:starts[0] + PROMPT_STEPS] + 2))


def test_cache_job_then_cached_reads_match(speech_dir, tmp_path_factory):
  from apache_beam.testing.test_pipeline import TestPipeline  # pylint: disable=g-import-not-at-top
  from seqio.scripts import cache_tasks_main  # pylint: disable=g-import-not-at-top

  from absl import flags  # pylint: disable=g-import-not-at-top
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()  # run_pipeline reads --base_seed (default)
  from apache_beam.runners.portability.fn_api_runner import fn_runner  # pylint: disable=g-import-not-at-top

  cache_dir = str(tmp_path_factory.mktemp("cache"))
  # The runner BUILD.md names for the cache job (the DirectRunner would first
  # try to download Prism).
  with TestPipeline(runner=fn_runner.FnApiRunner()) as p:
    cache_tasks_main.run_pipeline(p, [audiolm.COARSE_TASK], cache_dir)
  info = json.load(open(os.path.join(
      cache_dir, audiolm.COARSE_TASK, "info.train.json")))
  assert info["features"]["acoustic_tokens"]["shape"] == [
      None, constants.COARSE_LEVELS]
  seqio.add_global_cache_dirs([cache_dir])
  try:
    task = seqio.get_mixture_or_task(audiolm.COARSE_TASK)
    cached = task.get_dataset(audiolm.TASK_FEATURE_LENGTHS[audiolm.COARSE_TASK],
                              split="train", use_cached=True, shuffle=False,
                              seed=2)
    got = sorted(len(e["targets"]) for e in cached.as_numpy_iterator())
  finally:
    seqio.set_global_cache_dirs([])
  want = sorted(len(e["targets"]) for e in _examples(audiolm.COARSE_TASK,
                                                     seed=2))
  # The 4 s record whole (200 frames x 4 levels + EOS); the 12.3 s and 40 s
  # records as 10 s crops (500 frames x 4), EOS only if the crop hit the end.
  assert got == want
  assert want[0] == 200 * 4 + 1 and set(want[1:]) <= {2000, 2001}


# --- the real tokenization job's output ------------------------------------------
def test_all_speech_tasks_on_tokenized_librispeech(tokenized_dataset,
                                                    monkeypatch):
  monkeypatch.setenv("AUDIOLM_DATA_DIR", str(tokenized_dataset))
  info = contract.DatasetInfo.load(str(tokenized_dataset))
  layout = vocabulary.VocabularyLayout.from_dataset_info(info)
  resolved = stages.resolve_corpus("speech")
  assert resolved.split_map == {"train": ("train-clean-100",),
                                "validation": ("dev-clean",)}
  for name in SPEECH_TASKS:
    for split, count in (("train", 4), ("validation", 2)):
      examples = _examples(name, split=split)
      assert len(examples) == count
      for ex in examples:
        for key, value in ex.items():
          assert len(value) <= audiolm.TASK_FEATURE_LENGTHS[name][key]
          kinds = {layout.describe(i)[0] for i in value}
          assert "pad" not in kinds and "unused" not in kinds
          if key == "inputs" and name == audiolm.COARSE_TASK:
            assert kinds == {"semantic"}
          if key == "targets" and name != audiolm.SEMANTIC_TASK:
            assert kinds <= {"acoustic", "eos"}


def _token_records(data_dir, split):
  """Semantic tokens of a corpus split's records, read from the shards."""
  pattern = contract.DatasetInfo.load(str(data_dir)).shard_pattern(
      str(data_dir), split)
  out = []
  for rec in stages.read_token_records(tf.io.gfile.glob(pattern)):
    sem = rec[contract.SEMANTIC_TOKENS]
    if isinstance(sem, tf.sparse.SparseTensor):
      sem = tf.sparse.to_dense(sem)
    out.append(sem.numpy())
  return out


def test_semantic_prompt_task_on_tokenized_librispeech(tokenized_dataset,
                                                       monkeypatch):
  """Prompts of the real tokenization job's records: 3 s in, the rest out."""
  monkeypatch.setenv("AUDIOLM_DATA_DIR", str(tokenized_dataset))
  name = audiolm.SEMANTIC_PROMPT_TASK
  info = contract.DatasetInfo.load(str(tokenized_dataset))
  layout = vocabulary.VocabularyLayout.from_dataset_info(info)
  offset = layout.semantic_offset
  for split, corpus_split, count in (("train", "train-clean-100", 4),
                                     ("validation", "dev-clean", 2)):
    records = _token_records(tokenized_dataset, corpus_split)
    examples = _examples(name, split=split, seed=1)
    assert len(examples) == len(records) == count
    matched = set()
    for ex in examples:
      inputs, targets = ex["inputs"], ex["targets"]
      print(f"{split}: prompt {len(inputs)} tokens, continuation "
            f"{len(targets)} tokens")
      assert 0 < len(inputs) <= 75 and len(targets) <= 176
      eos = len(targets) > 0 and targets[-1] == constants.EOS_ID
      body = targets[:-1] if eos else targets
      assert {layout.describe(i)[0] for i in np.r_[inputs, body]} <= {
          "semantic"}
      # The prompt and its continuation are one deduplicated sequence.
      joined = np.r_[inputs, body]
      assert np.all(joined[1:] != joined[:-1])
      # Find the crop: the records' 10 s windows (or whole, when shorter)
      # whose first 3 s deduplicate to the prompt and the rest to the body.
      hits = []
      for r, sem in enumerate(records):
        steps = min(len(sem), CONTINUATION_STEPS)
        for s in range(len(sem) - steps + 1):
          crop = sem[s:s + steps] + offset
          if (np.array_equal(_dedup(crop), joined) and
              np.array_equal(_dedup(crop[:PROMPT_STEPS]), inputs)):
            hits.append((r, s, s + steps == len(sem)))
      assert hits, "not a crop of any record"
      assert eos == any(end for _, _, end in hits)
      matched |= {r for r, _, _ in hits}
    assert matched == set(range(count))  # one example per record


def test_prompt_task_splits_one_crop_and_follows_seeds(speech_dir):
  _, records = speech_dir
  by_len = {len(r.semantic_tokens): r for r in records["train-clean-100"]}
  name = audiolm.SEMANTIC_PROMPT_TASK
  first = _examples(name, seed=4)
  assert [e["inputs"].tolist() for e in first] == [
      e["inputs"].tolist() for e in _examples(name, seed=4)]
  assert [e["inputs"].tolist() for e in first] != [
      e["inputs"].tolist() for e in _examples(name, seed=5)]
  for ex in first:
    joined = np.r_[ex["inputs"], ex["targets"]]
    if len(joined) and joined[-1] == constants.EOS_ID:
      joined = joined[:-1]
    # The 40 s record: a 10 s window at a seeded start; shorter ones whole.
    for steps, rec in by_len.items():
      n = min(steps, CONTINUATION_STEPS)
      starts = [s for s in range(steps - n + 1)
                if np.array_equal(_dedup(rec.semantic_tokens[s:s + n] + 2),
                                  joined)]
      if starts:
        break
    assert starts, "not a crop of any record"
    s = starts[0]
    np.testing.assert_array_equal(
        ex["inputs"], _dedup(rec.semantic_tokens[s:s + PROMPT_STEPS] + 2))
    assert (ex["targets"][-1] == constants.EOS_ID) == (s + n == steps)


def test_gin_overrides_prompt_seconds(speech_dir):
  gin.parse_config("""
      audiolm_tasks.speech_corpus.prompt_seconds = 1.0
      audiolm_tasks.speech_corpus.continuation_seconds = 2.0
  """)
  name = audiolm.SEMANTIC_PROMPT_TASK
  for ex in _examples(name, lengths={"inputs": 25, "targets": 26}):
    assert 0 < len(ex["inputs"]) <= 25 and len(ex["targets"]) <= 26
  gin.parse_config("audiolm_tasks.speech_corpus.prompt_seconds = 2.0")
  with pytest.raises(ValueError, match="fewer than the 2.0 s continuation"):
    _examples(name, lengths={"inputs": 50, "targets": 1})


# --- inspection ------------------------------------------------------------------
def test_inspect_summarize_and_describe_literal_examples():
  from audiolm_t5x.tasks import inspect_task as inspect_lib  # pylint: disable=g-import-not-at-top
  layout = vocabulary.VocabularyLayout(4, 2, 8)
  examples = [
      {"targets": np.array([2, 3, 1]), "crop_steps": 4,
       "crop_reaches_end": True},
      {"targets": np.array([5, 2]), "crop_steps": 2,
       "crop_reaches_end": False},
  ]
  stats = inspect_lib.summarize(examples, layout=layout, stage="semantic",
                                semantic_rate_hz=25)
  assert stats["examples"] == 2
  assert stats["dedup_ratio"] == pytest.approx(4 / 6)  # EOS not counted
  assert stats["eos_rate"] == 0.5
  assert stats["lengths"]["targets"]["max"] == 3
  assert stats["usage"]["semantic"]["used"] == 3  # raw ids 0, 1, 3
  assert stats["usage"]["semantic"]["tokens"] == 4
  assert stats["crop_seconds"]["max"] == pytest.approx(4 / 25)
  assert inspect_lib.describe_ids([2, 6, 15, 1], layout) == "S0 A0:0 A1:1 EOS"
  long = inspect_lib.describe_ids(list(range(2, 6)) * 10, layout,
                                  max_tokens=8)
  assert long.startswith("S0 S1 S2 S3 ...") and "(32 more)" in long


def test_inspect_summarize_counts_prompt_and_continuation():
  from audiolm_t5x.tasks import inspect_task as inspect_lib  # pylint: disable=g-import-not-at-top
  layout = vocabulary.VocabularyLayout(4, 2, 8)
  examples = [{"inputs": np.array([2, 3]), "targets": np.array([5, 1]),
               "crop_steps": 4, "crop_reaches_end": True}]
  stats = inspect_lib.summarize(examples, layout=layout,
                                stage=stages.SEMANTIC_PROMPT,
                                semantic_rate_hz=25)
  assert stats["dedup_ratio"] == pytest.approx(3 / 4)  # EOS not counted
  assert stats["usage"]["semantic"]["tokens"] == 3


def test_inspect_command_prints_examples_and_statistics(speech_dir, capsys):
  from audiolm_t5x.tasks import inspect_task as inspect_lib  # pylint: disable=g-import-not-at-top
  root, _ = speech_dir
  assert inspect_lib.main(["--task=audiolm_coarse_v001", "--split=train",
                           "--num_examples=2", f"--data_dir={root}"]) == 0
  out = capsys.readouterr().out
  assert "split train -> train-clean-100" in out
  assert out.count("\n#") == 2 and "statistics over 3 examples" in out
  assert "(semantic: 100 before dedup" in out  # the 4 s record, uncropped
  assert "acoustic level 3:" in out and "acoustic level 4" not in out
  assert "dedup ratio" in out
