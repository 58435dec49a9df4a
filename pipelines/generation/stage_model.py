"""The interface the generation chain samples each stage through.

A stage model takes a batch of :class:`Request` s (the stage's ``inputs``
prefix, a forced start of the target, and the target length) and returns
each request's target: the forced tokens followed by sampled ones, every
sampled position restricted to its :class:`~.constraints.LevelConstraint`
range. Two implementations:

* :class:`~audiolm_t5x.pipelines.generation.t5x_model.T5XStageModel`: a
  trained T5X checkpoint, sampled through ``DecoderOnlyModel``'s batch
  prediction with T5X's cached temperature sampling;
* :class:`StandInModel` (here): a tiny fixed random bigram model in numpy,
  with the same interface and constraint handling, so the chain, its masks,
  windows and decoding run in tests without T5X.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import List, Optional, Sequence

import numpy as np

from audiolm_t5x.pipelines.generation import constraints as constraints_lib


@dataclasses.dataclass(frozen=True)
class SamplingSettings:
  """Temperature sampling of one stage (T5X's ``temperature_sample``).

  ``top_k = 0`` and ``top_p = 0.0`` disable the truncations; at most one of
  them may be set (as in T5X).
  """

  temperature: float
  top_k: int = 0
  top_p: float = 0.0

  def __post_init__(self):
    if self.temperature < 0:
      raise ValueError(f"temperature: expected >= 0, found {self.temperature}")
    if self.top_k < 0:
      raise ValueError(f"top_k: expected >= 0, found {self.top_k}")
    if not 0.0 <= self.top_p < 1.0:
      raise ValueError(f"top_p: expected 0 <= top_p < 1, found {self.top_p}")
    if self.top_k and self.top_p:
      raise ValueError("top_k and top_p: set at most one of them "
                       f"(found top_k={self.top_k}, top_p={self.top_p})")


@dataclasses.dataclass(frozen=True)
class Request:
  """One sequence to sample.

  Attributes:
    inputs: LM ids of the stage's ``inputs`` (prefix), may be empty.
    forced: LM ids that start the target (teacher-forced, not sampled).
    length: target tokens wanted in all, forced ones included.
    seed: the row's own seed, or None. With a seed, the row's samples
      depend only on it (and the model), not on the other rows of the batch
      or the row's place in it; without, on the call's ``seed`` and the
      row's index.
  """

  inputs: np.ndarray
  forced: np.ndarray
  length: int
  seed: Optional[int] = None

  def __post_init__(self):
    if len(self.forced) > self.length:
      raise constraints_lib.GenerationError(
          f"request: {len(self.forced)} forced tokens exceed the target "
          f"length {self.length}")


class StageModel(abc.ABC):
  """A trained stage, sampled in batches."""

  #: whether the stage's ``inputs`` attend bidirectionally (prefix LM).
  bidirectional_inputs: bool = False
  #: embedding table size (ids must be below it).
  vocab_size: int = 0
  #: a description for output metadata (checkpoint path, model name).
  description: str = ""

  @abc.abstractmethod
  def generate(self, requests: Sequence[Request], *,
               constraint: constraints_lib.LevelConstraint,
               sampling: SamplingSettings, seed: int) -> List[np.ndarray]:
    """Returns each request's target, ``forced + sampled``, of ``length`` ids.

    Deterministic for a given ``seed`` and list of requests; a request
    with its own ``seed`` is sampled the same in any batch.
    """


class StandInModel(StageModel):
  """A fixed random bigram LM (numpy) behind the :class:`StageModel` interface.

  ``logits(next | prev) = E[prev] . W[next]`` with small random tables drawn
  from ``model_seed``. The first target position is conditioned on the last
  ``inputs`` or forced token (0 without any). It has no quality: it exists so
  that the chain's plumbing (prefixes, forcing, constraints, windows, batching,
  decoding) is exercised without T5X. Sampling applies the constraint, the
  temperature, top-k / top-p, as :func:`t5x.decoding.temperature_sample` does.

  ``calls`` records ``(num_requests, max_inputs, max_length)`` per call.
  """

  def __init__(self, vocab_size: int, *, model_seed: int = 0, dim: int = 8,
               bidirectional_inputs: bool = False, name: str = "stand-in"):
    rng = np.random.default_rng(model_seed)
    self.vocab_size = int(vocab_size)
    self.bidirectional_inputs = bidirectional_inputs
    self.description = f"{name} (bigram, seed {model_seed})"
    self._emb = rng.normal(size=(self.vocab_size, dim)).astype(np.float32)
    self._out = rng.normal(size=(self.vocab_size, dim)).astype(np.float32)
    self.calls: List[tuple] = []

  def _sample(self, logits: np.ndarray, allowed: np.ndarray,
              sampling: SamplingSettings, rng: np.random.Generator) -> int:
    logits = np.where(allowed, logits, -np.inf)
    if sampling.temperature <= 1e-4:
      return int(np.argmax(logits))
    scaled = logits / sampling.temperature
    if sampling.top_k:
      kth = np.sort(scaled)[-min(sampling.top_k, int(allowed.sum()))]
      scaled = np.where(scaled >= kth, scaled, -np.inf)
    p = np.exp(scaled - scaled.max())
    p /= p.sum()
    if sampling.top_p:
      order = np.argsort(-p)
      keep = np.cumsum(p[order]) - p[order] < sampling.top_p
      mask = np.zeros_like(p, bool)
      mask[order[keep]] = True
      p = np.where(mask, p, 0.0)
      p /= p.sum()
    return int(rng.choice(self.vocab_size, p=p))

  def generate(self, requests, *, constraint, sampling, seed):
    self.calls.append((len(requests),
                       max((len(r.inputs) for r in requests), default=0),
                       max((r.length for r in requests), default=0)))
    allowed = constraint.allowed_mask(self.vocab_size)
    out = []
    for row, r in enumerate(requests):
      rng = np.random.default_rng([seed, row] if r.seed is None
                                  else [r.seed])
      target = [int(x) for x in r.forced]
      history = [int(x) for x in r.inputs] + target
      prev = history[-1] if history else 0
      for t in range(len(target), r.length):
        logits = self._out @ self._emb[prev]
        prev = self._sample(logits, allowed[t % constraint.period], sampling,
                            rng)
        target.append(prev)
      out.append(np.asarray(target, np.int64))
    return out
