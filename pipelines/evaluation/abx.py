"""ABX phone discriminability (ZeroSpeech 2017 / libri-light), in numpy.

The measure used by AudioLM (section 5.1, after the libri-light baseline) to
choose its semantic tokens: for triphones A and X of the same phone and B of
another phone in the same context (previous and next phone), the ABX error is
the probability that X is closer to B than to A under DTW over a frame
distance (ties count one half). Within speaker: A, B and X come from one
speaker; across speaker: A and B from one speaker, X from another.

Averaging, as libri-light's ``eval_ABX.py``: within speaker, the error of
each (speaker, phone a, phone b, context) cell is averaged over contexts, then
over speakers, then over the ordered phone pairs (a, b); across speakers, each
(speaker of A and B, a, b, context, speaker of X) cell is averaged over the
(context, X speaker) cells, then over the A/B speakers, then over (a, b).

Item files are the standard ``.item`` text (libri-light / ZeroSpeech 2017):
a header line, then ``file onset offset phone prev-phone next-phone speaker``
per item, times in seconds, the segment spanning the whole triphone.

Frames of an item: the libri-light rule for a feature rate r (frames per
second): frames ``ceil(r * onset - 0.5)`` to ``floor(r * offset - 0.5)``
(exclusive), i.e. the frames whose centre ``(i + 0.5) / r`` lies in the
segment; items with no frame are skipped and counted.

Frame distances:

* ``angular`` (libri-light's "cosine", the default for continuous features):
  ``arccos(<x, y> / |x||y|) / pi`` in [0, 1]; an all-zero frame is at distance
  0 from another all-zero frame and 1 from any other frame (as libri-light).
* ``cosine``: ``1 - cos``; ``euclidean``.
* ``onehot`` for discrete tokens: 0 for equal ids, 1 otherwise. This is the
  angular distance between one-hot codes up to a factor 2 (0.5 for different
  ids), which changes no ABX comparison; it is what ZeroSpeech 2021 computes
  when discrete units are given as one-hot vectors.
* centroid distance for discrete tokens: map ids to their k-means centroids
  (:func:`tokens_to_centroids`) and use ``angular``.

DTW: steps (i-1, j), (i, j-1), (i-1, j-1); the accumulated cost is divided by
the number of cells on the optimal path (ties of predecessors resolved
diagonal, then (i, j-1), then (i-1, j), as libri-light's backtracking). The
DTW runs vectorised over thousands of item pairs at once.

Differences from libri-light's tool, on purpose: every X speaker is used
across speakers (libri-light samples at most 5 at random), and groups are
never subsampled (libri-light caps a group at ``max_size_group``), so the
result is deterministic. The distance matrix is computed with X as the row
sequence for every pair; libri-light mirrors within-speaker distances, which
can differ only where the DTW path length has a tie.

Example::

  items = read_items("dev-clean.item")
  feats = {"84-121123-0000": np.load(...), ...}   # [T, D] at 50 Hz
  result = abx_error_rates(feats, items, rate=50.0, distance="angular")
  result.within, result.across    # fractions, e.g. 0.067, 0.076
"""

from __future__ import annotations

import collections
import dataclasses
import math
from typing import Iterable, Mapping, Optional, Sequence

import numpy as np

DISTANCES = ("angular", "cosine", "euclidean", "onehot")
_PAIR_BUDGET = 64_000_000  # bytes of padded DTW cells per vectorised batch


class ItemFileError(ValueError):
  """A malformed .item file; the message names the line."""


@dataclasses.dataclass(frozen=True)
class Item:
  """One triphone occurrence of a .item file."""

  file: str
  onset: float
  offset: float
  phone: str
  prev: str
  next: str
  speaker: str

  @property
  def context(self) -> str:
    return f"{self.prev}+{self.next}"

  def line(self) -> str:
    return (f"{self.file} {self.onset:.4f} {self.offset:.4f} {self.phone} "
            f"{self.prev} {self.next} {self.speaker}")


ITEM_HEADER = "#file onset offset #phone prev-phone next-phone speaker"


def parse_items(text: str, *, source: str = "<items>") -> list[Item]:
  """Parses .item text (first line is a header and is skipped)."""
  items = []
  lines = text.splitlines()
  for n, line in enumerate(lines[1:], start=2):
    if not line.strip():
      continue
    cols = line.split()
    if len(cols) != 7:
      raise ItemFileError(
          f"{source} line {n}: expected 7 columns (file onset offset phone "
          f"prev next speaker), found {len(cols)}: {line!r}")
    try:
      onset, offset = float(cols[1]), float(cols[2])
    except ValueError as e:
      raise ItemFileError(f"{source} line {n}: onset/offset are not numbers: "
                          f"{line!r}") from e
    if not (math.isfinite(onset) and math.isfinite(offset)) or offset <= onset:
      raise ItemFileError(f"{source} line {n}: needs onset < offset, found "
                          f"{onset} and {offset}")
    items.append(Item(cols[0], onset, offset, cols[3], cols[4], cols[5],
                      cols[6]))
  return items


def read_items(path: str) -> list[Item]:
  """Reads a .item file from any Beam filesystem path."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  with FileSystems.open(path) as f:
    return parse_items(f.read().decode("utf-8"), source=path)


def format_items(items: Iterable[Item]) -> str:
  return "\n".join([ITEM_HEADER, *(i.line() for i in items)]) + "\n"


def frame_span(onset: float, offset: float, *, rate: float,
               num_frames: int) -> tuple[int, int]:
  """[start, end) frame indices of a segment (libri-light's rule)."""
  start = max(0, int(math.ceil(rate * onset - 0.5)))
  end = min(num_frames, int(math.floor(rate * offset - 0.5)))
  return start, end


def tokens_to_centroids(ids: np.ndarray, centroids: np.ndarray) -> np.ndarray:
  """[T] k-means ids -> [T, D] centroid vectors (for the centroid distance)."""
  return np.asarray(centroids, np.float32)[np.asarray(ids, np.int64)]


# --- Frame distances and DTW -------------------------------------------------


def _normalise(x: np.ndarray) -> np.ndarray:
  norm = np.linalg.norm(x, axis=-1, keepdims=True)
  return x / np.where(norm > 0, norm, 1.0)


def frame_distance_matrix(x: np.ndarray, y: np.ndarray,
                          distance: str) -> np.ndarray:
  """[A, ...] and [B, ...] frames -> [A, B] frame distances.

  >>> frame_distance_matrix(np.array([[1., 0.]]), np.array([[0., 2.],
  ...                       [3., 0.]]), "angular")
  array([[0.5, 0. ]])
  """
  if distance == "onehot":
    return (np.asarray(x)[:, None] != np.asarray(y)[None, :]).astype(
        np.float64)
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if distance == "euclidean":
    d2 = (np.sum(x * x, -1)[:, None] + np.sum(y * y, -1)[None, :]
          - 2.0 * (x @ y.T))
    return np.sqrt(np.maximum(d2, 0.0))
  cos = np.clip(_normalise(x) @ _normalise(y).T, -1.0, 1.0)
  if distance == "cosine":
    return 1.0 - cos
  if distance != "angular":
    raise ValueError(f"unknown distance {distance!r}; known: {DISTANCES}")
  d = np.arccos(cos) / np.pi
  zx = ~np.any(x != 0, axis=-1)
  zy = ~np.any(y != 0, axis=-1)
  d = np.where(zx[:, None] ^ zy[None, :], 1.0, d)
  return np.where(zx[:, None] & zy[None, :], 0.0, d)


def dtw(dist: np.ndarray, len_a: np.ndarray, len_b: np.ndarray) -> np.ndarray:
  """Path-length-normalised DTW of a batch of padded distance matrices.

  Args:
    dist: [P, A, B] frame distances, padded past each pair's lengths.
    len_a: [P] rows used per pair (>= 1).
    len_b: [P] columns used per pair (>= 1).

  Returns:
    [P] accumulated cost on the optimal path divided by its number of cells.

  >>> float(dtw(np.array([[[0., 2., 3.], [1., 0., 2.]]]), [2], [3])[0])
  0.6666666666666666
  """
  dist = np.asarray(dist, np.float64)
  len_a = np.asarray(len_a, np.int64)
  len_b = np.asarray(len_b, np.int64)
  out = np.zeros(dist.shape[0], np.float64)
  # Pairs of similar size together, so that little of the grid is padding.
  size = np.maximum(len_a, len_b)
  for s in np.unique(size):
    idx = np.nonzero(size == s)[0]
    a, b = int(len_a[idx].max()), int(len_b[idx].max())
    grid = np.ascontiguousarray(dist[idx, :a, :b].transpose(1, 2, 0))
    out[idx] = _dtw_grid(grid, len_a[idx], len_b[idx])
  return out


def _dtw_grid(dist: np.ndarray, len_a: np.ndarray,
              len_b: np.ndarray) -> np.ndarray:
  """DTW on [A, B, P] (pairs last, so each cell's update is contiguous)."""
  a, b, p = dist.shape
  cost = np.empty_like(dist)
  steps = np.empty(dist.shape, np.int64)
  cost[0, 0] = dist[0, 0]
  steps[0, 0] = 1
  if a > 1:
    cost[1:, 0] = np.cumsum(dist[1:, 0], axis=0) + dist[0, 0]
    steps[1:, 0] = np.arange(2, a + 1)[:, None]
  if b > 1:
    cost[0, 1:] = np.cumsum(dist[0, 1:], axis=0) + dist[0, 0]
    steps[0, 1:] = np.arange(2, b + 1)[:, None]
  for i in range(1, a):
    for j in range(1, b):
      diag, left, up = cost[i - 1, j - 1], cost[i, j - 1], cost[i - 1, j]
      take_diag = (diag <= left) & (diag <= up)
      take_left = ~take_diag & (left <= up)
      best = np.where(take_diag, diag, np.where(take_left, left, up))
      n = np.where(take_diag, steps[i - 1, j - 1],
                   np.where(take_left, steps[i, j - 1], steps[i - 1, j]))
      cost[i, j] = dist[i, j] + best
      steps[i, j] = n + 1
  cols = np.arange(p)
  return cost[len_a - 1, len_b - 1, cols] / steps[len_a - 1, len_b - 1, cols]


def _blocks(segments: Sequence[np.ndarray], distance: str):
  """All pairs of one group of segments: padded [n*n, L, L] blocks + lengths.

  One frame-distance matrix over the group's frames (one matrix product),
  then each pair's block is gathered from it.
  """
  lengths = np.array([s.shape[0] for s in segments], np.int64)
  starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
  frames = np.concatenate(segments)
  full = frame_distance_matrix(frames, frames, distance)
  lmax = int(lengths.max())
  pos = starts[:, None] + np.minimum(np.arange(lmax)[None, :],
                                     lengths[:, None] - 1)  # [n, L]
  n = len(segments)
  ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
  ii, jj = ii.reshape(-1), jj.reshape(-1)
  blocks = full[pos[ii][:, :, None], pos[jj][:, None, :]]
  return blocks, lengths[ii], lengths[jj]


def group_distances(groups: Sequence[Sequence[np.ndarray]], *,
                    distance: str) -> list[np.ndarray]:
  """DTW distance matrices [n_g, n_g] (row = X) for groups of segments.

  Groups are batched so that one vectorised DTW covers many of them.
  """
  out: list = [None] * len(groups)
  batch, size = [], 0

  def flush():
    if not batch:
      return
    parts = [_blocks(groups[g], distance) for g in batch]
    lmax = max(b.shape[1] for b, _, _ in parts)
    padded = np.concatenate([
        np.pad(b, ((0, 0), (0, lmax - b.shape[1]), (0, lmax - b.shape[2])))
        for b, _, _ in parts])
    la = np.concatenate([p[1] for p in parts])
    lb = np.concatenate([p[2] for p in parts])
    flat = dtw(padded, la, lb)
    k = 0
    for g in batch:
      n = len(groups[g])
      out[g] = flat[k:k + n * n].reshape(n, n)
      k += n * n
    batch.clear()

  for g, segs in enumerate(groups):
    lmax = max(s.shape[0] for s in segs)
    cost = len(segs) ** 2 * lmax * lmax
    if size + cost > _PAIR_BUDGET // 8:
      flush()
      size = 0
    batch.append(g)
    size += cost
  flush()
  return out


# --- ABX ---------------------------------------------------------------------


@dataclasses.dataclass
class AbxResult:
  """Error rates (fractions) and what they rest on."""

  within: Optional[float]
  across: Optional[float]
  num_items: int  # items with at least one frame
  num_skipped: int
  skipped_reasons: dict  # reason -> count
  within_phone_pairs: int
  across_phone_pairs: int
  within_triplets: int
  across_triplets: int
  distance: str
  rate: float

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def _segments(features: Mapping[str, np.ndarray], items: Sequence[Item], *,
              rate: float):
  kept, segs = [], []
  skipped = collections.Counter()
  for it in items:
    f = features.get(it.file)
    if f is None:
      skipped["no features for file"] += 1
      continue
    start, end = frame_span(it.onset, it.offset, rate=rate,
                            num_frames=f.shape[0])
    if end <= start:
      skipped["no frame inside the segment"] += 1
      continue
    seg = f[start:end]
    if seg.dtype.kind == "f" and not np.all(np.isfinite(seg)):
      skipped["NaN or infinite feature"] += 1
      continue
    kept.append(it)
    segs.append(seg)
  return kept, segs, skipped


def abx_error_rates(features: Mapping[str, np.ndarray], items: Sequence[Item],
                    *, rate: float, distance: str = "angular") -> AbxResult:
  """Within- and across-speaker ABX error rates of features on items.

  Args:
    features: file id -> [T, D] float features, or [T] int token ids (then
      ``distance`` must be ``"onehot"``; for the centroid distance pass
      :func:`tokens_to_centroids` vectors with ``"angular"``).
    items: from :func:`read_items`.
    rate: feature frames per second (25 for AudioLM's semantic tokens).
    distance: one of :data:`DISTANCES`.

  Returns:
    An :class:`AbxResult`; ``within`` / ``across`` are None where no triplet
    exists (e.g. one speaker only for ``across``).
  """
  if distance not in DISTANCES:
    raise ValueError(f"unknown distance {distance!r}; known: {DISTANCES}")
  kept, segs, skipped = _segments(features, items, rate=rate)
  if segs:
    discrete = segs[0].ndim == 1
    if discrete != (distance == "onehot"):
      raise ValueError("token ids need distance='onehot', float features "
                       f"another distance; got {distance!r} for "
                       f"{'ids' if discrete else 'features'}")
  groups: dict = collections.defaultdict(list)  # (context, speaker, phone)
  for k, it in enumerate(kept):
    groups[(it.context, it.speaker, it.phone)].append(k)
  by_cs: dict = collections.defaultdict(dict)  # (c, s) -> phone -> idx
  for (c, s, ph), idx in groups.items():
    by_cs[(c, s)][ph] = np.array(idx)
  by_cp: dict = collections.defaultdict(dict)  # (c, phone) -> speaker -> idx
  for (c, s, ph), idx in groups.items():
    by_cp[(c, ph)][s] = np.array(idx)

  # Contexts with two phones for one speaker are the only ones that score.
  useful = sorted({c for (c, s), phones in by_cs.items() if len(phones) > 1})
  useful_set = set(useful)
  ctx_items = collections.defaultdict(list)
  for k, it in enumerate(kept):
    if it.context in useful_set:
      ctx_items[it.context].append(k)
  mats = group_distances([[segs[k] for k in ctx_items[c]] for c in useful],
                         distance=distance)
  dist: dict = {}
  for c, mat in zip(useful, mats):
    pos = np.full(len(kept), -1, np.int64)
    pos[ctx_items[c]] = np.arange(len(ctx_items[c]))
    dist[c] = (pos, mat)

  def sub(c, rows, cols):
    pos, mat = dist[c]
    return mat[pos[rows]][:, pos[cols]]

  def theta(d_xa, d_xb, exclude_diag):
    cmp_lt = d_xa[:, :, None] < d_xb[:, None, :]
    cmp_eq = d_xa[:, :, None] == d_xb[:, None, :]
    score = cmp_lt + 0.5 * cmp_eq
    if exclude_diag:
      n = d_xa.shape[0]
      score = score * (1 - np.eye(n))[:, :, None]
      count = n * (n - 1) * d_xb.shape[1]
    else:
      count = score.size
    return float(score.sum()) / count, count

  within_cells, across_cells = {}, {}
  n_within = n_across = 0
  for (c, s), phones in sorted(by_cs.items()):
    if len(phones) < 2:
      continue
    for a, ia in sorted(phones.items()):
      for b, ib in sorted(phones.items()):
        if a == b:
          continue
        if ia.size > 1:
          th, n = theta(sub(c, ia, ia), sub(c, ia, ib), True)
          within_cells[(s, a, b, c)] = 1.0 - th
          n_within += n
        for s2, ix in sorted(by_cp[(c, a)].items()):
          if s2 == s:
            continue
          th, n = theta(sub(c, ix, ia), sub(c, ix, ib), False)
          across_cells[(s, a, b, c, s2)] = 1.0 - th
          n_across += n

  within, n_wp = _average(within_cells, speaker_key=lambda k: (k[0],))
  across, n_ap = _average(across_cells, speaker_key=lambda k: (k[0],))
  return AbxResult(
      within=within, across=across, num_items=len(kept),
      num_skipped=int(sum(skipped.values())), skipped_reasons=dict(skipped),
      within_phone_pairs=n_wp, across_phone_pairs=n_ap,
      within_triplets=n_within, across_triplets=n_across, distance=distance,
      rate=float(rate))


def _average(cells: dict, *, speaker_key) -> tuple[Optional[float], int]:
  """Mean over the cells of a (speaker, a, b), then speakers, then (a, b)."""
  if not cells:
    return None, 0
  by_spk = collections.defaultdict(list)  # (speaker key, a, b) -> [errors]
  for k, v in cells.items():
    by_spk[(speaker_key(k), k[1], k[2])].append(v)
  by_pair = collections.defaultdict(list)  # (a, b) -> [per-speaker means]
  for (spk, a, b), vals in by_spk.items():
    by_pair[(a, b)].append(float(np.mean(vals)))
  return float(np.mean([np.mean(v) for v in by_pair.values()])), len(by_pair)
