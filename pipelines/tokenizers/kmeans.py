"""The semantic k-means codebook: standardise each dimension, nearest centroid.

As in AudioLM, every embedding dimension is standardised to zero mean and unit
variance (statistics of the fitting sample) before k-means. The codebook is a
portable artifact, no pickle:

* ``<path>`` (``.npz``): ``centroids`` [K, D] float32, ``mean`` [D],
  ``std`` [D] and ``provenance`` (a JSON string);
* ``<path>.json``: the same provenance, for people (backend, layer, sample
  size, seed, inertia, cluster usage).

Fitting uses scikit-learn's ``MiniBatchKMeans`` with a fixed seed
(:func:`fit_codebook`); the Beam job ``pipelines.fit_kmeans`` samples the
frames across the corpus.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from typing import Any, Optional

import numpy as np

from audiolm_t5x.pipelines.tokenizers import base

_MIN_STD = 1e-5  # a constant dimension must not divide by zero


@dataclasses.dataclass
class KMeansCodebook:
  """Standardisation statistics plus K centroids in the standardised space."""

  centroids: np.ndarray  # [K, D]
  mean: np.ndarray  # [D]
  std: np.ndarray  # [D]
  provenance: dict = dataclasses.field(default_factory=dict)

  @property
  def size(self) -> int:
    return int(self.centroids.shape[0])

  @property
  def dim(self) -> int:
    return int(self.centroids.shape[1])

  @property
  def fingerprint(self) -> str:
    h = hashlib.sha256()
    for a in (self.centroids, self.mean, self.std):
      h.update(np.ascontiguousarray(a, np.float32).tobytes())
    return h.hexdigest()[:16]

  def standardize(self, embeddings: np.ndarray) -> np.ndarray:
    return (np.asarray(embeddings, np.float32) - self.mean) / self.std

  def quantize(self, embeddings: np.ndarray) -> np.ndarray:
    """[T, D] embeddings -> [T] int64 ids of the nearest centroid."""
    x = self.standardize(embeddings)
    if x.ndim != 2 or x.shape[1] != self.dim:
      raise ValueError(f"embeddings of shape {x.shape} do not match the "
                       f"codebook's dimension {self.dim}")
    if x.shape[0] == 0:
      return np.zeros([0], np.int64)
    c = self.centroids.astype(np.float32)
    # argmin ||x - c||^2 = argmin (||c||^2 - 2 x.c)
    d = np.sum(c * c, axis=1)[None, :] - 2.0 * (x @ c.T)
    return np.argmin(d, axis=1).astype(np.int64)

  def info(self) -> dict:
    return {"codebook_size": self.size, "dim": self.dim,
            "codebook_fingerprint": self.fingerprint,
            "codebook_provenance": self.provenance}

  # -- I/O (any Beam filesystem) ---------------------------------------------
  def save(self, path: str) -> None:
    from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

    buf = io.BytesIO()
    np.savez(buf, centroids=self.centroids.astype(np.float32),
             mean=self.mean.astype(np.float32), std=self.std.astype(np.float32),
             provenance=np.array(json.dumps(self.provenance, sort_keys=True)))
    with FileSystems.create(path) as f:
      f.write(buf.getvalue())
    with FileSystems.create(path + ".json") as f:
      f.write(json.dumps({**self.provenance, "fingerprint": self.fingerprint},
                         indent=2, sort_keys=True).encode("utf-8"))

  @classmethod
  def load(cls, path: str) -> "KMeansCodebook":
    from audiolm_t5x.pipelines import staging  # pylint: disable=g-import-not-at-top

    try:  # any Beam filesystem; copied to local disk once per worker
      with open(staging.local_path(path), "rb") as f:
        data = np.load(io.BytesIO(f.read()), allow_pickle=False)
    except Exception as e:  # pylint: disable=broad-except
      raise base.TokenizerError(f"cannot read k-means codebook {path}: {e}"
                                ) from e
    missing = {"centroids", "mean", "std"} - set(data.files)
    if missing:
      raise base.TokenizerError(f"{path} is not a codebook: lacks {missing}")
    prov = json.loads(str(data["provenance"])) if "provenance" in data else {}
    return cls(centroids=data["centroids"], mean=data["mean"],
               std=data["std"], provenance=prov)


def cluster_usage(ids: np.ndarray, k: int) -> dict:
  """How evenly ids use the K clusters: used fraction and perplexity."""
  counts = np.bincount(np.asarray(ids, np.int64), minlength=k)
  p = counts / max(1, counts.sum())
  nz = p[p > 0]
  entropy = float(-(nz * np.log(nz)).sum())
  return {"used_clusters": int((counts > 0).sum()), "k": int(k),
          "used_fraction": float((counts > 0).mean()),
          "perplexity": float(np.exp(entropy)),
          "max_cluster_share": float(p.max()) if p.size else 0.0}


def fit_codebook(frames: np.ndarray, *, k: int, seed: int,
                 batch_size: int = 4096, max_iter: int = 100,
                 provenance: Optional[dict[str, Any]] = None) -> KMeansCodebook:
  """Fits standardisation and mini-batch k-means on sampled frames [M, D]."""
  from sklearn.cluster import MiniBatchKMeans  # pylint: disable=g-import-not-at-top

  frames = np.asarray(frames, np.float32)
  if frames.ndim != 2 or frames.shape[0] < k:
    raise ValueError(f"need at least k={k} frames of shape [M, D] to fit, got "
                     f"{frames.shape}")
  mean = frames.mean(axis=0)
  std = np.maximum(frames.std(axis=0), _MIN_STD)
  x = (frames - mean) / std
  km = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=batch_size,
                       max_iter=max_iter, n_init=3)
  km.fit(x)
  book = KMeansCodebook(centroids=km.cluster_centers_.astype(np.float32),
                        mean=mean, std=std)
  ids = book.quantize(frames)
  inertia = float(np.sum((x - book.centroids[ids]) ** 2))
  book.provenance = {
      **(provenance or {}), "k": int(k), "seed": int(seed),
      "num_frames": int(frames.shape[0]), "dim": int(frames.shape[1]),
      "inertia": inertia, "inertia_per_frame": inertia / frames.shape[0],
      "cluster_usage": cluster_usage(ids, k), "algorithm":
          f"sklearn MiniBatchKMeans(batch_size={batch_size}, "
          f"max_iter={max_iter}, n_init=3) on standardised frames",
  }
  return book
