"""Writing: the tokenization job's last step (shards, manifests, dataset info).

``WriteTokenShards`` writes sorted, atomically committed shards with a
manifest each; ``WriteDatasetInfo`` sums the manifests into
``dataset_info.json`` and ``dead_letter.jsonl``. Every input ends as a record
or a dead letter: ``inputs = written + failed`` in the counters and in
dataset_info.json.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import posixpath
import time
import uuid
from typing import Any, Iterable

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from audiolm_t5x import contract
from . import audio

MANIFEST_SUFFIX = ".manifest.json"


def shard_of(record_id: str, num_shards: int) -> int:
  """Stable shard index of a record id (same on every runner and run)."""
  digest = hashlib.sha1(record_id.encode("utf-8")).digest()
  return int.from_bytes(digest[:8], "big") % num_shards



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


class _WriteShardFn(beam.DoFn):
  """Writes one shard: records sorted by id, then its manifest (the commit)."""

  def __init__(self, output_dir: str, num_shards: int, fingerprints: dict):
    self._out = output_dir
    self._n = num_shards
    self._fp = fingerprints

  def process(self, element):
    (split, index), grouped = element
    records = sorted(grouped["records"], key=lambda r: r.id)
    dead = sorted(grouped["dead"], key=lambda d: (d.path, d.step))
    final = posixpath.join(self._out, split,
                           contract.shard_name(split, index, self._n))
    _atomic_write(final, _tfrecord_bytes(r.to_example_bytes() for r in records))
    manifest = {
        "split": split, "shard": index, "num_shards": self._n,
        "file": posixpath.basename(final), "fingerprints": self._fp,
        "records": len(records), "failed": len(dead),
        "num_samples": sum(r.num_samples for r in records),
        "semantic_tokens": sum(int(r.semantic_tokens.size) for r in records),
        "acoustic_frames": sum(int(r.acoustic_tokens.shape[0])
                               for r in records),
        "ids": [r.id for r in records],
        "dead_letters": [dataclasses.asdict(d) for d in dead],
    }
    _atomic_write(manifest_path(self._out, split, index, self._n),
                  json.dumps(manifest, sort_keys=True).encode("utf-8"))
    yield (split, index)


class WriteTokenShards(beam.PTransform):
  """(records, dead letters) -> committed shards; yields (split, shard) keys."""

  def __init__(self, *, output_dir: str, num_shards: int, fingerprints: dict):
    super().__init__()
    self._out = output_dir
    self._n = num_shards
    self._fp = fingerprints

  def expand(self, pcolls):
    records, dead = pcolls
    n = self._n
    keyed_records = records | "KeyRecords" >> beam.Map(
        lambda r: ((r.split, shard_of(r.id, n)), r))
    keyed_dead = dead | "KeyDead" >> beam.Map(
        lambda d: ((d.split, shard_of(d.id or d.path, n)), d))
    return (
        {"records": keyed_records, "dead": keyed_dead}
        | "GroupShards" >> beam.CoGroupByKey()
        | "WriteShards" >> beam.ParDo(
            _WriteShardFn(self._out, self._n, self._fp)))


def summarize(manifests: Iterable[dict]) -> dict:
  """Per-split and total counts from shard manifests."""
  splits: dict[str, dict[str, Any]] = {}
  for m in manifests:
    s = splits.setdefault(m["split"], {
        "records": 0, "failed": 0, "num_samples": 0, "semantic_tokens": 0,
        "acoustic_frames": 0, "shards": 0, "num_shards": m["num_shards"],
        "failed_by_step": {}})
    for k in ("records", "failed", "num_samples", "semantic_tokens",
              "acoustic_frames"):
      s[k] += m[k]
    s["shards"] += 1
    for d in m["dead_letters"]:
      s["failed_by_step"][d["step"]] = s["failed_by_step"].get(d["step"], 0) + 1
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


def done_shards(output_dir: str, fingerprints: dict, num_shards: int
                ) -> frozenset:
  """(split, shard) pairs already committed by an earlier run.

  Raises:
    ValueError: if the output holds shards of other tokenizers or shard count.
  """
  done = set()
  for m in read_manifests(output_dir):
    if m["fingerprints"] != fingerprints or m["num_shards"] != num_shards:
      raise ValueError(
          f"{output_dir} holds shards written with other settings "
          f"(fingerprints {m['fingerprints']}, num_shards {m['num_shards']}); "
          f"this run has {fingerprints}, {num_shards}. Use a new --output_dir "
          "or delete the old one.")
    done.add((m["split"], m["shard"]))
  return frozenset(done)


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

