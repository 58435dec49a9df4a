"""What a rerun of the tokenization job may keep, redo, or must refuse.

A rerun over an output directory keeps a committed shard only when it can
prove the shard is what this run would write:

1. **Settings.** Every manifest carries ``settings``: everything that
   shapes records (tokenizers with their options and fingerprints, corpus
   kind, splits, layout (archives or folders), grouping, shard count,
   silence and link rules, the member size limit, and for archives the list
   of archives with their sizes). Any difference is refused, naming the
   setting, the committed value and this run's.
2. **Inputs.** Every manifest lists the ``inputs`` (paths relative to the
   corpus root) its shard accounts for. The rerun lists the corpus and
   computes, with the same rule (:func:`corpus.inputs_by_shard`), what each
   committed shard should hold now. If inputs were added to or removed from
   committed shards, the rerun is refused with counts and examples, unless
   ``--redo_changed_shards`` is given: then exactly those shards are redone
   (uncommitted first, so a crash meanwhile loses nothing). Inputs that fall
   in shards not yet committed need nothing: the rerun reads them anyway.
3. **Integrity.** Every committed shard is checked against its manifest
   (size and sha256 by default): a missing or corrupt shard is redone.
   Temporary files and orphan shards (written, never committed) are
   removed; files the job did not write are reported and left alone.
"""

from __future__ import annotations

import dataclasses
import posixpath
from typing import Callable, Mapping, Optional

from apache_beam.io.filesystems import FileSystems

from . import integrity
from .options import UserError


class ResumeError(UserError):
  """The output directory cannot be resumed by this run (a user error)."""


@dataclasses.dataclass
class Plan:
  """The outcome of :func:`plan`."""

  done: frozenset  # (split, shard) pairs to skip
  redo: dict  # (split, shard) -> why a committed shard is redone
  removed: list  # temporaries and orphans deleted
  extra: list  # files the job did not write (left alone)


def _examples(paths, n=3) -> str:
  paths = sorted(paths)
  more = f" and {len(paths) - n} more" if len(paths) > n else ""
  return ", ".join(paths[:n]) + more


def _uncommit(output_dir: str, manifest: dict) -> None:
  """Deletes a shard's manifest (the commit), then the shard."""
  shard = integrity.shard_path_of(output_dir, manifest)
  for path in (integrity.manifest_path(shard), shard):
    if FileSystems.exists(path):
      FileSystems.delete([path])


def plan(output_dir: str, *, settings: Mapping,
         expected: Optional[Mapping[tuple, set]] = None,
         check: str = integrity.SHA256, redo_changed: bool = False,
         log: Callable[[str], None] = print) -> Plan:
  """Checks a rerun against the committed shards of ``output_dir``.

  Args:
    output_dir: the job's output (may be new and empty).
    settings: this run's settings (compared with every manifest's).
    expected: ``{(split, shard): input paths}`` from this run's listing;
      None where the job cannot know inputs before reading (archives: their
      list is part of ``settings`` instead).
    check: how committed shards are verified (``sha256`` or ``size``).
    redo_changed: redo committed shards whose inputs changed instead of
      refusing.
    log: where notices go.

  Raises:
    ResumeError: other settings, or changed inputs without ``redo_changed``.
  """
  output_dir = output_dir.rstrip("/")
  report = integrity.verify(output_dir, check=check)
  manifests = list(report.manifests.values())
  settings = dict(settings)
  for m in manifests:
    old = m.get("settings")
    if old == settings:
      continue
    old = old or {}
    diff = [k for k in sorted(set(old) | set(settings))
            if old.get(k) != settings.get(k)]
    detail = "; ".join(f"{k}: committed {old.get(k)!r}, this run "
                       f"{settings.get(k)!r}" for k in diff[:4])
    raise ResumeError(
        f"{output_dir} holds shards written with other settings ({detail}). "
        "Rerun with the committed settings, or use a new --output_dir")
  redo = {}
  for p in report.of_kind("missing", "corrupt"):
    if p.shard >= 0:
      redo[(p.split, p.shard)] = f"{p.kind}: {p.detail}"
      log(f"redoing {p.path}: {p.kind} ({p.detail})")
  committed = {(m["split"], m["shard"]): m for m in manifests}
  if expected is not None:
    changed, added, removed = {}, set(), set()
    for key, m in committed.items():
      if key in redo:
        continue
      want, have = set(expected.get(key, ())), set(m.get("inputs", ()))
      if want != have:
        changed[key] = m
        added |= want - have
        removed |= have - want
    if changed and not redo_changed:
      parts = []
      if added:
        parts.append(f"{len(added)} added ({_examples(added)})")
      if removed:
        parts.append(f"{len(removed)} removed ({_examples(removed)})")
      raise ResumeError(
          f"the corpus changed since {len(changed)} committed shards of "
          f"{output_dir} were written: inputs {' and '.join(parts)}. Rerun "
          "with --redo_changed_shards to redo exactly those shards, or use a "
          "new --output_dir")
    for key in changed:
      redo[key] = "its inputs changed"
    if changed:
      log(f"redoing {len(changed)} committed shards whose inputs changed "
          f"({len(added)} added, {len(removed)} removed)")
  for key in redo:
    if key in committed:
      _uncommit(output_dir, committed[key])
  leftovers = report.of_kind("temporary", "orphan")
  removed_paths = integrity.remove(
      p for p in leftovers if FileSystems.exists(p.path))
  if removed_paths:
    log(f"removed {len(removed_paths)} temporary or uncommitted files left by "
        f"an earlier run (e.g. {posixpath.basename(removed_paths[0])})")
  extra = [p.path for p in report.of_kind("extra")]
  if extra:
    log(f"note: {len(extra)} files in {output_dir} were not written by the "
        f"job and are left alone (e.g. {extra[0]})")
  return Plan(done=frozenset(set(committed) - set(redo)), redo=redo,
              removed=removed_paths, extra=extra)


def remove_temporaries(output_dir: str) -> list:
  """Deletes ``*.tmp-*`` files in ``output_dir`` itself (not split folders)."""
  pattern = posixpath.join(output_dir.rstrip("/"), "*" + integrity.TMP_MARK + "*")
  try:
    found = FileSystems.match([pattern])[0].metadata_list
  except Exception:  # pylint: disable=broad-except
    return []
  paths = [m.path for m in found]
  if paths:
    FileSystems.delete(paths)
  return paths
