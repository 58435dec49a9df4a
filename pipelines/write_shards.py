"""Writing: the tokenization job's last step (shards, manifests, dataset info).

``WriteTokenShards`` writes sorted, atomically committed shards with a
manifest each; ``WriteDatasetInfo`` sums the manifests into
``dataset_info.json`` and ``dead_letter.jsonl``. Every input ends as a record
or a dead letter: ``inputs = written + failed`` in the counters and in
dataset_info.json.

A manifest (the commit marker, see ``audiolm_t5x.pipelines.integrity``)
holds the shard's ``sha256``, ``bytes``, ``records``, ``ids``, its dead
letters, the ``inputs`` it accounts for, the ``settings`` that shaped it and
the ids of records whose level was flagged (``flagged``). Before committing,
the writer checks that every input of the shard is a record or a dead letter;
one that is neither becomes a dead letter of step ``internal`` (never a
silent loss).

Test hook: ``AUDIOLM_TEST_PAUSE_AFTER_COMMITS=N:PATH`` makes the writer
create ``PATH`` and sleep after its N-th commit in a process, so that tests
can kill the job at a chosen point.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import posixpath
import time
import uuid
from typing import Any, Iterable, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from audiolm_t5x import contract
from . import audio
from . import corpus as corpus_lib
from . import integrity
from .reporting import counter

MANIFEST_SUFFIX = integrity.MANIFEST_SUFFIX
shard_of = corpus_lib.shard_of
PAUSE_ENV = "AUDIOLM_TEST_PAUSE_AFTER_COMMITS"
_commits = [0]


@dataclasses.dataclass(frozen=True)
class ShardKeys:
  """Which ``(split, shard)`` a work item, record, dead letter belongs to.

  The same rule as :func:`corpus.inputs_by_shard` (by the input's path
  relative to ``root``), so a shard's records, dead letters and inputs meet.
  """

  num_shards: int
  root: str = ""
  corpus: str = corpus_lib.LIBRISPEECH
  grouped: bool = False

  def rel(self, path: str) -> str:
    first = path.split(";")[0]
    if "!" in first:  # <archive>!<member>
      return first.split("!", 1)[1]
    root = self.root.rstrip("/")
    if root and first.startswith(root + "/"):
      return first[len(root) + 1:]
    return first

  def _index(self, rel: str, fallback: str) -> int:
    if corpus_lib.chapter_of(rel) is None:
      key = fallback or rel
    else:
      key = corpus_lib.shard_key(rel, corpus=self.corpus,
                                 grouped=self.grouped)[1]
    return shard_of(key, self.num_shards)

  def of_item(self, item: corpus_lib.WorkItem) -> tuple:
    return item.split, self._index(item.parts[0].rel, item.id)

  def of_record(self, r: contract.TokenRecord) -> tuple:
    return r.split, self._index(r.source.split(";")[0], r.id)

  def of_dead(self, d: contract.DeadLetter) -> tuple:
    return d.split, self._index(self.rel(d.path), d.id)



def manifest_path(output_dir: str, split: str, index: int,
                  num_shards: int) -> str:
  name = contract.shard_name(split, index, num_shards)
  return posixpath.join(output_dir, split,
                        name[: -len(contract.SHARD_SUFFIX)] + MANIFEST_SUFFIX)


def read_manifests(output_dir: str) -> list[dict]:
  """Every committed shard manifest under ``output_dir`` (sorted)."""
  pattern = posixpath.join(output_dir, "*", "*" + MANIFEST_SUFFIX)
  try:
    matches = FileSystems.match([pattern])[0].metadata_list
  except Exception:  # pylint: disable=broad-except
    return []
  out = []
  for m in sorted(matches, key=lambda m: m.path):
    with FileSystems.open(m.path) as f:
      out.append(json.loads(f.read().decode("utf-8")))
  return out


def _tfrecord_bytes(payloads: Iterable[bytes]) -> bytes:
  """TFRecord framing (length, masked crc32c of length, data, masked crc)."""
  from apache_beam.io.tfrecordio import _TFRecordUtil  # pylint: disable=g-import-not-at-top

  buf = io.BytesIO()
  for payload in payloads:
    _TFRecordUtil.write_record(buf, payload)
  return buf.getvalue()


def _atomic_write(path: str, data: bytes) -> None:
  """Writes through any Beam filesystem: a temporary name, then a rename."""
  folder = posixpath.dirname(path)
  if not FileSystems.exists(folder):
    try:
      FileSystems.mkdirs(folder)
    except (IOError, OSError):  # another worker made it meanwhile
      if not FileSystems.exists(folder):
        raise
  tmp = f"{path}.tmp-{uuid.uuid4().hex}"
  with FileSystems.create(tmp) as f:
    f.write(data)
  if FileSystems.exists(path):
    FileSystems.delete([path])
  FileSystems.rename([tmp], [path])


def _pause_hook() -> None:
  spec = os.environ.get(PAUSE_ENV)
  if not spec:
    return
  _commits[0] += 1
  n, _, path = spec.partition(":")
  if _commits[0] == int(n):
    with open(path, "w") as f:
      f.write(str(os.getpid()))
    time.sleep(3600)


class _WriteShardFn(beam.DoFn):
  """Writes one shard: records sorted by id, then its manifest (the commit)."""

  def __init__(self, output_dir: str, keys: ShardKeys, fingerprints: dict,
               settings: Optional[dict]):
    self._out = output_dir
    self._keys = keys
    self._n = keys.num_shards
    self._fp = fingerprints
    self._settings = settings
    self._lost = counter("internal_lost")

  def _account(self, split, inputs, records, dead):
    """Dead letters for inputs that are neither a record nor a dead letter."""
    seen = {p for r in records for p in r.source.split(";")}
    seen |= {self._keys.rel(p) for d in dead for p in d.path.split(";")}
    for rel in sorted(set(inputs) - seen):
      if corpus_lib.is_transcript(rel):
        continue
      self._lost.inc()
      yield contract.DeadLetter(
          path=posixpath.join(self._keys.root, rel), id="", split=split,
          step="internal", reason="input was neither written nor "
          "dead-lettered by the job (a bug; please report it)")

  def process(self, element):
    (split, index), grouped = element
    records = sorted(grouped["records"], key=lambda r: r.id)
    dead = list(grouped["dead"])
    inputs = sorted(set(grouped.get("inputs", ())))
    dead = sorted(dead + list(self._account(split, inputs, records, dead)),
                  key=lambda d: (d.path, d.step))
    if not inputs:  # archives: inputs are what the job read
      inputs = sorted({p for r in records for p in r.source.split(";")} |
                      {self._keys.rel(d.path) for d in dead})
    final = posixpath.join(self._out, split,
                           contract.shard_name(split, index, self._n))
    data = _tfrecord_bytes(r.to_example_bytes() for r in records)
    _atomic_write(final, data)
    flagged: dict[str, list] = {}
    for r in records:
      for flag in r.flags:
        flagged.setdefault(flag, []).append(r.id)
    manifest = {
        "split": split, "shard": index, "num_shards": self._n,
        "file": posixpath.basename(final), "fingerprints": self._fp,
        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "records": len(records), "failed": len(dead),
        "num_samples": sum(r.num_samples for r in records),
        "semantic_tokens": sum(int(r.semantic_tokens.size) for r in records),
        "acoustic_frames": sum(int(r.acoustic_tokens.shape[0])
                               for r in records),
        "ids": [r.id for r in records],
        "dead_letters": [dataclasses.asdict(d) for d in dead],
        "inputs": inputs, "flagged": flagged,
    }
    if self._settings is not None:
      manifest["settings"] = self._settings
    _atomic_write(manifest_path(self._out, split, index, self._n),
                  json.dumps(manifest, sort_keys=True).encode("utf-8"))
    _pause_hook()
    yield (split, index)


class WriteTokenShards(beam.PTransform):
  """(records, dead letters[, inputs]) -> committed shards.

  Yields the ``(split, shard)`` keys written. ``inputs``, when given, is a
  PCollection of ``((split, shard), relative path)`` (see
  :func:`corpus.inputs_by_shard`) that each manifest records.
  """

  def __init__(self, *, output_dir: str, num_shards: int, fingerprints: dict,
               settings: Optional[dict] = None,
               keys: Optional[ShardKeys] = None):
    super().__init__()
    self._out = output_dir
    self._keys = keys or ShardKeys(num_shards)
    if self._keys.num_shards != num_shards:
      raise ValueError("keys.num_shards differs from num_shards")
    self._fp = fingerprints
    self._settings = settings

  def expand(self, pcolls):
    records, dead = pcolls[0], pcolls[1]
    keys = self._keys
    groups = {
        "records": records | "KeyRecords" >> beam.Map(
            lambda r: (keys.of_record(r), r)),
        "dead": dead | "KeyDead" >> beam.Map(lambda d: (keys.of_dead(d), d)),
    }
    if len(pcolls) > 2:
      groups["inputs"] = pcolls[2]
    return (
        groups
        | "GroupShards" >> beam.CoGroupByKey()
        | "WriteShards" >> beam.ParDo(
            _WriteShardFn(self._out, keys, self._fp, self._settings)))


def summarize(manifests: Iterable[dict]) -> dict:
  """Per-split and total counts from shard manifests."""
  splits: dict[str, dict[str, Any]] = {}
  for m in manifests:
    s = splits.setdefault(m["split"], {
        "records": 0, "failed": 0, "num_samples": 0, "semantic_tokens": 0,
        "acoustic_frames": 0, "shards": 0, "num_shards": m["num_shards"],
        "failed_by_step": {}, "flagged": {}})
    for k in ("records", "failed", "num_samples", "semantic_tokens",
              "acoustic_frames"):
      s[k] += m[k]
    s["shards"] += 1
    for d in m["dead_letters"]:
      s["failed_by_step"][d["step"]] = s["failed_by_step"].get(d["step"], 0) + 1
    if "file" in m:
      s["shards_committed"] = sorted(s.get("shards_committed", []) +
                                     [m["file"]])
    for flag, ids in (m.get("flagged") or {}).items():
      s["flagged"][flag] = s["flagged"].get(flag, 0) + len(ids)
  for s in splits.values():
    s["hours"] = round(s["num_samples"] / audio.constants.SAMPLE_RATE / 3600,
                       6)
    s["inputs"] = s["records"] + s["failed"]
  return splits


class _WriteInfoFn(beam.DoFn):

  def __init__(self, output_dir: str, info: contract.DatasetInfo):
    self._out = output_dir
    self._info = info

  def process(self, unused_count):
    manifests = read_manifests(self._out)
    info = dataclasses.replace(self._info, splits=summarize(manifests))
    dead = sorted((d for m in manifests for d in m["dead_letters"]),
                  key=lambda d: (d["split"], d["path"], d["step"]))
    _atomic_write(
        posixpath.join(self._out, contract.DEAD_LETTER_FILENAME),
        "".join(json.dumps(d, sort_keys=True) + "\n" for d in dead).encode())
    info.options = {**info.options, "finished_unix": int(time.time())}
    _atomic_write(posixpath.join(self._out, contract.DATASET_INFO_FILENAME),
                  info.to_json().encode("utf-8"))
    yield info.splits


class WriteDatasetInfo(beam.PTransform):
  """After every shard is committed, writes dataset_info.json from manifests."""

  def __init__(self, *, output_dir: str, info: contract.DatasetInfo):
    super().__init__()
    self._out = output_dir
    self._info = info

  def expand(self, written):
    return (written
            | "CountShards" >> beam.combiners.Count.Globally()
            | "WriteInfo" >> beam.ParDo(_WriteInfoFn(self._out, self._info)))


def dataset_versions() -> dict:
  import platform  # pylint: disable=g-import-not-at-top

  out = {"python": platform.python_version(), "audiolm_t5x": _own_version()}
  for mod in ("apache_beam", "numpy", "soundfile", "tensorflow", "sklearn"):
    try:
      out[mod] = __import__(mod).__version__
    except Exception:  # pylint: disable=broad-except
      pass
  return out


def _own_version() -> str:
  import audiolm_t5x  # pylint: disable=g-import-not-at-top
  return audiolm_t5x.__version__

