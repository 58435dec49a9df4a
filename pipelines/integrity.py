"""Integrity of a tokenized dataset: manifests, checksums, and what is wrong.

Every shard ``<split>/<split>-00003-of-00016.tfrecord`` is committed by its
manifest ``<split>-00003-of-00016.manifest.json`` (written after the shard,
by atomic rename). A manifest holds the shard's ``sha256``, ``bytes``,
``records`` and ``ids``, its dead letters, the ``inputs`` it accounts for and
the ``settings`` that shaped it. :func:`verify` compares the files with the
manifests and ``dataset_info.json`` and reports:

=============== ==============================================================
``missing``     a committed shard whose file is gone, or a shard that
                ``dataset_info.json`` lists but whose manifest is gone
``corrupt``     a shard whose size or sha256 differs from its manifest, or a
                manifest that cannot be parsed
``orphan``      a shard file without a manifest: written before a crash,
                never committed (readers never read it; a rerun replaces it)
``temporary``   a ``*.tmp-*`` file left by an interrupted write (a rerun
                removes it)
``extra``       any other file in a split folder (not the job's)
=============== ==============================================================

Used by ``python -m pipelines.verify``, by every rerun of the tokenization
job (missing or corrupt shards are redone, orphans and temporaries removed)
and by the SeqIO tasks (which read exactly the committed shards).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import re
from typing import Iterable, Optional

from apache_beam.io.filesystems import FileSystems

from audiolm_t5x import contract
from .options import UserError

MANIFEST_SUFFIX = ".manifest.json"
TMP_MARK = ".tmp-"
SHA256 = "sha256"
SIZE = "size"
CHECKS = (SHA256, SIZE)
_SHARD_RE = re.compile(r"^(?P<split>.+)-(?P<index>\d{5})-of-(?P<n>\d{5})$")


@dataclasses.dataclass(frozen=True)
class Problem:
  """One thing wrong in an output directory."""

  kind: str  # missing | corrupt | orphan | temporary | extra
  path: str
  detail: str
  split: str = ""
  shard: int = -1

  def __str__(self) -> str:
    return f"{self.kind}: {self.path}: {self.detail}"


@dataclasses.dataclass
class Report:
  """What :func:`verify` found."""

  output_dir: str
  manifests: dict = dataclasses.field(default_factory=dict)  # path -> dict
  problems: list = dataclasses.field(default_factory=list)
  records: int = 0
  failed: int = 0

  @property
  def ok(self) -> bool:
    return not self.problems

  def of_kind(self, *kinds: str) -> list:
    return [p for p in self.problems if p.kind in kinds]

  def counts(self) -> dict:
    out: dict = {}
    for p in self.problems:
      out[p.kind] = out.get(p.kind, 0) + 1
    return out


def manifest_path(shard_path: str) -> str:
  return shard_path[: -len(contract.SHARD_SUFFIX)] + MANIFEST_SUFFIX


def shard_path_of(output_dir: str, manifest: dict) -> str:
  return posixpath.join(output_dir.rstrip("/"), manifest["split"],
                        manifest["file"])


def file_digest(path: str) -> tuple[str, int]:
  """(sha256 hex, size) of a file on any Beam filesystem, streamed."""
  h = hashlib.sha256()
  size = 0
  with FileSystems.open(path) as f:
    while True:
      chunk = f.read(1 << 20)
      if not chunk:
        break
      h.update(chunk)
      size += len(chunk)
  return h.hexdigest(), size


def _list(output_dir: str) -> list:
  pattern = posixpath.join(output_dir.rstrip("/"), "*", "*")
  try:
    return FileSystems.match([pattern])[0].metadata_list
  except Exception:  # pylint: disable=broad-except  # nothing there yet
    return []


def read_json(path: str) -> dict:
  with FileSystems.open(path) as f:
    return json.loads(f.read().decode("utf-8"))


def _size_of(path: str) -> Optional[int]:
  try:
    found = FileSystems.match([path])[0].metadata_list
  except Exception:  # pylint: disable=broad-except
    return None
  return found[0].size_in_bytes if found else None


def check_shard(output_dir: str, manifest: dict, *, check: str = SHA256,
                size: Optional[int] = None) -> Optional[Problem]:
  """The problem of one committed shard (missing / corrupt), or None.

  ``size``: the file's size when the caller listed it already.
  """
  path = shard_path_of(output_dir, manifest)
  where = dict(split=manifest.get("split", ""), shard=manifest.get("shard", -1))
  if "sha256" not in manifest:
    return Problem("corrupt", manifest_path(path),
                   "manifest has no sha256 (written by an older version; "
                   "rerun the job in a new --output_dir)", **where)
  size = _size_of(path) if size is None else size
  if size is None:
    return Problem("missing", path, "committed shard is gone", **where)
  if size != manifest["bytes"]:
    return Problem("corrupt", path, f"{size} bytes, the manifest says "
                   f"{manifest['bytes']}", **where)
  if check == SHA256:
    digest, _ = file_digest(path)
    if digest != manifest["sha256"]:
      return Problem("corrupt", path, f"sha256 {digest[:16]}..., the "
                     f"manifest says {manifest['sha256'][:16]}...", **where)
  return None


def verify(output_dir: str, *, check: str = SHA256,
           dataset_info: Optional[dict] = None) -> Report:
  """Checks every file under ``output_dir``'s split folders.

  Args:
    output_dir: the tokenization job's output.
    check: ``"sha256"`` (read every shard) or ``"size"`` (sizes only).
    dataset_info: the parsed ``dataset_info.json`` (read from
      ``output_dir`` when None and present); its per-split ``shards`` lists
      let a deleted manifest be found.
  """
  if check not in CHECKS:
    raise ValueError(f"check must be one of {CHECKS}, got {check!r}")
  output_dir = output_dir.rstrip("/")
  report = Report(output_dir)
  files = {m.path: m.size_in_bytes for m in _list(output_dir)}
  committed_shards = set()
  for path in sorted(p for p in files if p.endswith(MANIFEST_SUFFIX)
                     and TMP_MARK not in p):
    try:
      m = read_json(path)
      shard = shard_path_of(output_dir, m)
    except (ValueError, KeyError) as e:
      report.problems.append(Problem("corrupt", path,
                                     f"manifest cannot be parsed ({e})"))
      continue
    report.manifests[path] = m
    committed_shards.add(shard)
    problem = (check_shard(output_dir, m, check=check, size=files[shard])
               if shard in files else Problem(
                   "missing", shard, "committed shard is gone", m["split"],
                   m["shard"]))
    if problem:
      report.problems.append(problem)
    else:
      report.records += m.get("records", 0)
      report.failed += m.get("failed", 0)
  for path in sorted(files):
    name = posixpath.basename(path)
    if path in report.manifests or path in committed_shards:
      continue
    if TMP_MARK in name:
      report.problems.append(Problem(
          "temporary", path, "left by an interrupted write"))
    elif path.endswith(MANIFEST_SUFFIX):
      continue  # unparsable, reported above
    elif (path.endswith(contract.SHARD_SUFFIX) and _SHARD_RE.match(
        name[: -len(contract.SHARD_SUFFIX)])):
      report.problems.append(Problem(
          "orphan", path, "shard without a manifest (never committed; "
          "readers skip it)"))
    else:
      report.problems.append(Problem("extra", path, "not written by the job"))
  if dataset_info is None:
    info_path = posixpath.join(output_dir, contract.DATASET_INFO_FILENAME)
    if FileSystems.exists(info_path):
      try:
        dataset_info = read_json(info_path)
      except ValueError as e:
        report.problems.append(Problem(
            "corrupt", info_path, f"cannot be parsed ({e})"))
  for split, s in sorted(((dataset_info or {}).get("splits") or {}).items()):
    for name in s.get("shards_committed", ()) if isinstance(s, dict) else ():
      shard = posixpath.join(output_dir, split, name)
      if shard not in committed_shards:
        report.problems.append(Problem(
            "missing", shard, f"{contract.DATASET_INFO_FILENAME} lists it but "
            "its manifest is gone", split))
  return report


class CorruptShardError(IOError):
  """A committed shard is missing or does not match its manifest."""


def committed_shards(output_dir: str, splits: Iterable[str], *,
                     check: Optional[str] = SIZE) -> list:
  """Shard files of ``splits`` that a manifest commits, sorted.

  Readers use this instead of a glob, which would also catch shards written
  before a crash but never committed.

  Args:
    output_dir: the tokenization job's output.
    splits: corpus split names.
    check: None, ``"size"`` or ``"sha256"``: how each shard is checked
      against its manifest before it is returned.

  Raises:
    FileNotFoundError: a split has no committed shard.
    CorruptShardError: a shard is missing or differs from its manifest; the
      message names the file.
  """
  output_dir = output_dir.rstrip("/")
  out = []
  for split in splits:
    pattern = posixpath.join(output_dir, split, "*" + MANIFEST_SUFFIX)
    try:
      found = FileSystems.match([pattern])[0].metadata_list
    except Exception:  # pylint: disable=broad-except
      found = []
    names = sorted(m.path for m in found if TMP_MARK not in m.path)
    if not names:
      raise FileNotFoundError(f"no committed shards of split {split!r}: "
                              f"nothing matches {pattern}")
    for name in names:
      manifest = read_json(name)
      if check:
        problem = check_shard(output_dir, manifest, check=check)
        if problem:
          raise CorruptShardError(
              f"{problem.path}: {problem.kind} shard ({problem.detail}); "
              "rerun the tokenization job on this output to redo it, or check "
              "with python -m pipelines.verify")
      out.append(shard_path_of(output_dir, manifest))
  return out


def remove(problems: Iterable[Problem]) -> list:
  """Deletes the files of ``problems`` (orphans, temporaries); their paths."""
  paths = sorted({p.path for p in problems})
  if paths:
    FileSystems.delete(paths)
  return paths


class UsageError(UserError):
  """The output directory is not a tokenized dataset (a user error)."""


def run_verify(output_dir: str, *, check: str = SHA256, out=None) -> Report:
  """:func:`verify` with a printed report (``python -m pipelines.verify``).

  Raises:
    UsageError: ``output_dir`` holds no manifest and no dataset_info.json.
  """
  import sys  # pylint: disable=g-import-not-at-top

  out = out or sys.stdout
  report = verify(output_dir, check=check)
  info = posixpath.join(output_dir.rstrip("/"), contract.DATASET_INFO_FILENAME)
  if not report.manifests and not report.problems and not FileSystems.exists(
      info):
    raise UsageError(f"{output_dir} holds no shard manifests and no "
                      f"{contract.DATASET_INFO_FILENAME}: is --output_dir "
                      "the tokenization job's output?")
  for p in report.problems:
    print(p, file=out)
  counts = ", ".join(f"{n} {k}" for k, n in sorted(report.counts().items()))
  print(f"{output_dir}: {len(report.manifests)} committed shards "
        f"({check} checked), {report.records} records, {report.failed} dead "
        f"letters; {'OK' if report.ok else 'PROBLEMS: ' + counts}", file=out)
  return report


def write_manifest(shard_path: str, *, split: str, shard: int,
                   num_shards: int, ids: Iterable[str] = ()) -> dict:
  """Commits a shard written outside the job (benchmarks, synthetic data).

  Writes the manifest that readers require: file, size and sha256 (plus
  ``ids`` and ``records`` when given).
  """
  digest, size = file_digest(shard_path)
  ids = list(ids)
  manifest = {"split": split, "shard": shard, "num_shards": num_shards,
              "file": posixpath.basename(shard_path), "bytes": size,
              "sha256": digest, "records": len(ids), "ids": ids,
              "failed": 0, "dead_letters": []}
  with FileSystems.create(manifest_path(shard_path)) as f:
    f.write(json.dumps(manifest, sort_keys=True).encode("utf-8"))
  return manifest
