"""ABX phone discriminability (ZeroSpeech 2017 / libri-light), in numpy.

The measure used by AudioLM (section 5.1, after the libri-light baseline) to
choose its semantic tokens: for triphones A and X of the same phone and B of
another phone in the same context (previous and next phone), the ABX error is
the probability that X is closer to B than to A under DTW over a frame
distance (ties count one half). Within speaker: A, B and X come from one
speaker; across speaker: A and B from one speaker, X from another.

Averaging, as libri-light's ``eval_ABX.py``: the error of each (speaker(s),
phone a, phone b, context) cell is averaged over contexts, then over speakers
(within) or speaker pairs (across), then over the ordered phone pairs (a, b).

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
_PAIR_BUDGET = 64_000_000  # floats per chunk of padded frame pairs


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
  return np.where(norm > 0, x / np.where(norm > 0, norm, 1.0), 0.0)


def frame_distances(x: np.ndarray, y: np.ndarray, distance: str) -> np.ndarray:
  """[P, A, ...] and [P, B, ...] frames -> [P, A, B] distances."""
  if distance == "onehot":
    return (x[:, :, None] != y[:, None, :]).astype(np.float64)
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  if distance == "euclidean":
    d2 = (np.sum(x * x, -1)[:, :, None] + np.sum(y * y, -1)[:, None, :]
          - 2.0 * np.einsum("pad,pbd->pab", x, y))
    return np.sqrt(np.maximum(d2, 0.0))
  xn, yn = _normalise(x), _normalise(y)
  cos = np.clip(np.einsum("pad,pbd->pab", xn, yn), -1.0, 1.0)
  zx = ~np.any(x != 0, axis=-1)
  zy = ~np.any(y != 0, axis=-1)
  if distance == "angular":
    d = np.arccos(cos) / np.pi
    one_zero = zx[:, :, None] ^ zy[:, None, :]
    both_zero = zx[:, :, None] & zy[:, None, :]
    return np.where(both_zero, 0.0, np.where(one_zero, 1.0, d))
  if distance == "cosine":
    return 1.0 - cos
  raise ValueError(f"unknown distance {distance!r}; known: {DISTANCES}")


def dtw(dist: np.ndarray, len_a: np.ndarray, len_b: np.ndarray) -> np.ndarray:
  """Path-length-normalised DTW of a batch of padded distance matrices.

  Args:
    dist: [P, A, B] frame distances, padded past each pair's lengths.
    len_a: [P] rows used per pair (>= 1).
    len_b: [P] columns used per pair (>= 1).

  Returns:
    [P] accumulated cost on the optimal path divided by its number of cells.
  """
  dist = np.asarray(dist, np.float64)
  p, a, b = dist.shape
  cost = np.empty_like(dist)
  steps = np.empty(dist.shape, np.int64)
  cost[:, 0, 0] = dist[:, 0, 0]
  steps[:, 0, 0] = 1
  if a > 1:
    cost[:, 1:, 0] = np.cumsum(dist[:, 1:, 0], axis=1) + dist[:, :1, 0]
    steps[:, 1:, 0] = np.arange(2, a + 1)
  if b > 1:
    cost[:, 0, 1:] = np.cumsum(dist[:, 0, 1:], axis=1) + dist[:, 0, :1]
    steps[:, 0, 1:] = np.arange(2, b + 1)
  for i in range(1, a):
    for j in range(1, b):
      diag, left, up = cost[:, i - 1, j - 1], cost[:, i, j - 1], cost[:, i - 1, j]
      take_diag = (diag <= left) & (diag <= up)
      take_left = ~take_diag & (left <= up)
      best = np.where(take_diag, diag, np.where(take_left, left, up))
      n = np.where(take_diag, steps[:, i - 1, j - 1],
                   np.where(take_left, steps[:, i, j - 1], steps[:, i - 1, j]))
      cost[:, i, j] = dist[:, i, j] + best
      steps[:, i, j] = n + 1
  rows = np.arange(p)
  la, lb = np.asarray(len_a) - 1, np.asarray(len_b) - 1
  return cost[rows, la, lb] / steps[rows, la, lb]


def pair_distances(segments: Sequence[np.ndarray], pairs: np.ndarray, *,
                   distance: str) -> np.ndarray:
  """DTW distance of each (row, column) pair of segments, in padded chunks."""
  pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
  out = np.zeros(pairs.shape[0], np.float64)
  if not pairs.size:
    return out
  lengths = np.array([s.shape[0] for s in segments], np.int64)
  lmax = int(lengths.max())
  discrete = segments[0].ndim == 1
  dim = 1 if discrete else segments[0].shape[1]
  padded = np.zeros((len(segments), lmax) + (() if discrete else (dim,)),
                    segments[0].dtype)
  for k, s in enumerate(segments):
    padded[k, :s.shape[0]] = s
  la, lb = lengths[pairs[:, 0]], lengths[pairs[:, 1]]
  order = np.lexsort((lb, la))  # similar shapes together: little padding
  chunk = max(1, _PAIR_BUDGET // (lmax * lmax * max(dim, 8)))
  for start in range(0, order.size, chunk):
    idx = order[start:start + chunk]
    ma, mb = int(la[idx].max()), int(lb[idx].max())
    x = padded[pairs[idx, 0], :ma]
    y = padded[pairs[idx, 1], :mb]
    out[idx] = dtw(frame_distances(x, y, distance), la[idx], lb[idx])
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
  pair_list, offsets = [], {}
  total = 0
  for c in useful:
    idx = np.array(ctx_items[c])
    offsets[c] = (idx, total)
    grid = np.stack(np.meshgrid(idx, idx, indexing="ij"), -1).reshape(-1, 2)
    pair_list.append(grid)
    total += grid.shape[0]
  pairs = np.concatenate(pair_list) if pair_list else np.zeros([0, 2], int)
  flat = pair_distances(segs, pairs, distance=distance) if segs else pairs[:, 0]
  dist: dict = {}
  for c in useful:
    idx, off = offsets[c]
    pos = np.full(len(kept), -1, np.int64)
    pos[idx] = np.arange(idx.size)
    dist[c] = (pos, flat[off:off + idx.size ** 2].reshape(idx.size, idx.size))

  def sub(c, rows, cols):
    pos, mat = dist[c]
    return mat[np.ix_(pos[rows], pos[cols])]

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
  across, n_ap = _average(across_cells, speaker_key=lambda k: (k[0], k[4]))
  return AbxResult(
      within=within, across=across, num_items=len(kept),
      num_skipped=int(sum(skipped.values())), skipped_reasons=dict(skipped),
      within_phone_pairs=n_wp, across_phone_pairs=n_ap,
      within_triplets=n_within, across_triplets=n_across, distance=distance,
      rate=float(rate))


def _average(cells: dict, *, speaker_key) -> tuple[Optional[float], int]:
  """Mean over contexts, then speakers (or speaker pairs), then phone pairs."""
  if not cells:
    return None, 0
  by_spk = collections.defaultdict(list)  # (speaker key, a, b) -> [errors]
  for k, v in cells.items():
    by_spk[(speaker_key(k), k[1], k[2])].append(v)
  by_pair = collections.defaultdict(list)  # (a, b) -> [per-speaker means]
  for (spk, a, b), vals in by_spk.items():
    by_pair[(a, b)].append(float(np.mean(vals)))
  return float(np.mean([np.mean(v) for v in by_pair.values()])), len(by_pair)
