"""Which LM ids each stage may sample at each target position.

Derived from the one vocabulary layout (:mod:`audiolm_t5x.tasks.vocabulary`).
A :class:`LevelConstraint` is a cycle of id ranges: target position ``t``
(0-based, counted from the first target token, after the stage's ``inputs``)
may only take ids in ``ranges[t % len(ranges)]``. The rules per stage:

* **stage 1, semantic**: every position takes a semantic id
  ``[2, 2 + K)``.
* **stage 2, coarse**: frame-major order over the Q' coarse levels: position
  ``t`` holds level ``t % Q'``, ids ``[base + q N, base + (q + 1) N)``. The
  piano's single acoustic stage is the same with Q' = Q.
* **stage 3, fine**: position ``t`` holds level ``Q' + t % (Q - Q')``.

No stage may sample PAD (id 0, SeqIO's padding) or EOS (id 1): in training
EOS only marks the end of a recording, and a generation's length is fixed by
the request (whole frames, then cut to the requested seconds), so none of its
positions is a recording's end. The padded ids above ``layout.size`` are never
allowed either.

Example (K = 4, Q = 3, N = 8, Q' = 1; base = 6)::

  >>> layout = vocabulary.VocabularyLayout.from_sizes(
  ...     semantic_codebook_size=4, acoustic_levels=3, acoustic_codebook_size=8)
  >>> coarse(layout, coarse_levels=1).ranges
  ((6, 14),)
  >>> fine(layout, coarse_levels=1).ranges
  ((14, 22), (22, 30))
"""

from __future__ import annotations

import dataclasses
from typing import Sequence, Tuple

import numpy as np

from audiolm_t5x.tasks import vocabulary

SEMANTIC = "semantic"
COARSE = "coarse"
FINE = "fine"
STAGES = (SEMANTIC, COARSE, FINE)
STAGE_NUMBER = {SEMANTIC: 1, COARSE: 2, FINE: 3}


class GenerationError(ValueError):
  """Sampled ids broke a stage's constraint, or a request was inconsistent."""


@dataclasses.dataclass(frozen=True)
class LevelConstraint:
  """Allowed id range ``[lo, hi)`` per target position, cycling.

  Attributes:
    stage: ``"semantic"``, ``"coarse"`` or ``"fine"`` (for messages).
    ranges: one ``(lo, hi)`` per position of the cycle (one per level).
    first_level: acoustic level of ``ranges[0]`` (-1 for semantic ids).
  """

  stage: str
  ranges: Tuple[Tuple[int, int], ...]
  first_level: int = -1

  @property
  def period(self) -> int:
    return len(self.ranges)

  def bounds(self) -> np.ndarray:
    """``[period, 2]`` int32 array of the ranges (for the samplers)."""
    return np.asarray(self.ranges, np.int32).reshape(-1, 2)

  def allowed_mask(self, vocab_size: int) -> np.ndarray:
    """``[period, vocab_size]`` bool: which ids each phase of the cycle allows."""
    ids = np.arange(vocab_size)[None, :]
    b = self.bounds()
    return (ids >= b[:, :1]) & (ids < b[:, 1:])

  def level_of(self, position: int) -> int:
    return (self.first_level + position % self.period
            if self.first_level >= 0 else -1)

  def check(self, ids: Sequence[int], *, start: int = 0,
            where: str = "") -> None:
    """Raises GenerationError at the first id outside its position's range.

    Args:
      ids: LM ids of consecutive target positions.
      start: target position of ``ids[0]``.
      where: what the ids belong to (prompt id, sample), for the message.
    """
    ids = np.asarray(ids, np.int64).reshape(-1)
    if not ids.size:
      return
    b = self.bounds()
    phase = (start + np.arange(ids.size)) % self.period
    bad = np.flatnonzero((ids < b[phase, 0]) | (ids >= b[phase, 1]))
    if bad.size:
      i = int(bad[0])
      pos = start + i
      level = self.level_of(pos)
      what = (f"acoustic level {level}" if level >= 0 else "a semantic id")
      lo, hi = b[phase[i]]
      raise GenerationError(
          f"stage {STAGE_NUMBER.get(self.stage, '?')} ({self.stage}){where}: "
          f"target position {pos} holds {what}, allowed ids [{lo}, {hi}), "
          f"found {int(ids[i])} ({bad.size} of {ids.size} ids out of range)")


def semantic(layout: vocabulary.VocabularyLayout) -> LevelConstraint:
  """Stage 1: semantic ids at every position."""
  lo = layout.semantic_offset
  return LevelConstraint(SEMANTIC, ((lo, lo + layout.semantic_codebook_size),))


def _levels(layout: vocabulary.VocabularyLayout, start: int, stop: int
            ) -> Tuple[Tuple[int, int], ...]:
  n = layout.acoustic_codebook_size
  return tuple((layout.acoustic_offset(q), layout.acoustic_offset(q) + n)
               for q in range(start, stop))


def coarse(layout: vocabulary.VocabularyLayout, *,
           coarse_levels: int) -> LevelConstraint:
  """Stage 2: levels ``0 .. Q'-1`` frame-major (Q' = Q for the piano)."""
  if not 0 < coarse_levels <= layout.acoustic_levels:
    raise ValueError(f"coarse_levels: expected 0 < Q' <= Q="
                     f"{layout.acoustic_levels}, found {coarse_levels}")
  return LevelConstraint(COARSE, _levels(layout, 0, coarse_levels), 0)


def fine(layout: vocabulary.VocabularyLayout, *,
         coarse_levels: int) -> LevelConstraint:
  """Stage 3: levels ``Q' .. Q-1`` frame-major."""
  if not 0 < coarse_levels < layout.acoustic_levels:
    raise ValueError(f"coarse_levels: expected 0 < Q' < Q="
                     f"{layout.acoustic_levels} for a fine stage, found "
                     f"{coarse_levels}")
  return LevelConstraint(
      FINE, _levels(layout, coarse_levels, layout.acoustic_levels),
      coarse_levels)


def to_raw(constraint: LevelConstraint, ids: np.ndarray, *,
           layout: vocabulary.VocabularyLayout) -> np.ndarray:
  """LM ids of whole frames -> tokenizer-native ids.

  Semantic ids become ``[T]`` raw k-means ids; acoustic ids of a
  ``period``-level cycle become ``[T, period]`` raw codes. The ids must have
  passed :meth:`LevelConstraint.check` from position 0.
  """
  ids = np.asarray(ids, np.int64)
  if constraint.stage == SEMANTIC:
    return ids - layout.semantic_offset
  frames = ids.reshape(-1, constraint.period)
  lo = constraint.bounds()[:, 0]
  return frames - lo[None, :]


def to_lm(constraint: LevelConstraint, raw: np.ndarray) -> np.ndarray:
  """Inverse of :func:`to_raw`: raw ids (``[T]`` or ``[T, period]``) -> flat LM ids."""
  raw = np.asarray(raw, np.int64)
  b = constraint.bounds()
  if constraint.stage == SEMANTIC:
    out = raw + b[0, 0]
  else:
    if raw.ndim != 2 or raw.shape[1] != constraint.period:
      raise GenerationError(
          f"stage {constraint.stage}: expected [T, {constraint.period}] raw "
          f"codes, found shape {raw.shape}")
    out = (raw + b[None, :, 0]).reshape(-1)
  constraint.check(out)
  return out
