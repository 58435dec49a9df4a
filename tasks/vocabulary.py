"""The one LM vocabulary layout shared by every AudioLM stage.

All stages use one global id space, so that their outputs chain at generation
time without remapping:

====================== =====================================================
ids                    meaning
====================== =====================================================
0                      PAD (``constants.PAD_ID``; SeqIO masks it from the loss)
1                      EOS (``constants.EOS_ID``; the recording ends here)
2 .. 2+K-1             semantic token ``k`` is id ``2 + k``
base + q*N + c         acoustic level ``q`` (0-based), code ``c``;
                       ``base = 2 + K``
====================== =====================================================

The size, ``2 + K + Q * N``, is padded up to a multiple of
``constants.VOCAB_PAD_MULTIPLE`` for the model's embedding table. For the
paper (K = 1024, Q = 12, N = 1024) that is 13314 ids padded to 13440
(:data:`PAPER_LAYOUT`); for the piano codec (Q = 3, N = 2^14) with K = 1024 it
is 50178 padded to 50304 (:data:`PIANO_LAYOUT`).

Example::

  >>> layout = VocabularyLayout.from_sizes(
  ...     semantic_codebook_size=1024, acoustic_levels=12,
  ...     acoustic_codebook_size=1024)
  >>> layout.semantic_id(5), layout.acoustic_id(level=1, code=7)
  (7, 2057)
  >>> layout.size, layout.padded_size
  (13314, 13440)
"""

from __future__ import annotations

import dataclasses
from typing import Tuple

from audiolm_t5x import constants
from audiolm_t5x import contract


def _round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


@dataclasses.dataclass(frozen=True)
class VocabularyLayout:
  """Where each kind of token lives in the LM id space.

  Attributes:
    semantic_codebook_size: K, number of semantic (k-means) ids.
    acoustic_levels: Q, residual quantiser levels of the codec.
    acoustic_codebook_size: N, codes per level.
  """

  semantic_codebook_size: int
  acoustic_levels: int
  acoustic_codebook_size: int

  def __post_init__(self):
    for name in ("semantic_codebook_size", "acoustic_levels",
                 "acoustic_codebook_size"):
      value = getattr(self, name)
      if not isinstance(value, int) or value < 1:
        raise ValueError(
            f"VocabularyLayout.{name}: expected a positive int, found "
            f"{value!r}")

  @classmethod
  def from_sizes(cls, *, semantic_codebook_size: int, acoustic_levels: int,
                 acoustic_codebook_size: int) -> "VocabularyLayout":
    """Builds the layout from K, Q and N."""
    return cls(int(semantic_codebook_size), int(acoustic_levels),
               int(acoustic_codebook_size))

  @classmethod
  def from_dataset_info(cls, info: contract.DatasetInfo) -> "VocabularyLayout":
    """Builds the layout from a tokenized dataset's ``dataset_info.json``."""
    return cls.from_sizes(
        semantic_codebook_size=info.semantic_codebook_size,
        acoustic_levels=info.acoustic_levels,
        acoustic_codebook_size=info.acoustic_codebook_size)

  # --- ranges -----------------------------------------------------------------
  @property
  def pad_id(self) -> int:
    return constants.PAD_ID

  @property
  def eos_id(self) -> int:
    return constants.EOS_ID

  @property
  def semantic_offset(self) -> int:
    """LM id of semantic token 0."""
    return constants.NUM_SPECIAL_IDS

  @property
  def acoustic_base(self) -> int:
    """LM id of acoustic level 0, code 0."""
    return constants.NUM_SPECIAL_IDS + self.semantic_codebook_size

  def acoustic_offset(self, level: int) -> int:
    """LM id of code 0 of acoustic level ``level`` (0-based)."""
    if not 0 <= level < self.acoustic_levels:
      raise ValueError(f"acoustic level: expected 0 <= level < "
                       f"{self.acoustic_levels}, found {level}")
    return self.acoustic_base + level * self.acoustic_codebook_size

  def semantic_id(self, token: int) -> int:
    """LM id of raw semantic token ``token``."""
    if not 0 <= token < self.semantic_codebook_size:
      raise ValueError(f"semantic token: expected [0, "
                       f"{self.semantic_codebook_size}), found {token}")
    return self.semantic_offset + token

  def acoustic_id(self, *, level: int, code: int) -> int:
    """LM id of raw acoustic code ``code`` of level ``level`` (0-based)."""
    if not 0 <= code < self.acoustic_codebook_size:
      raise ValueError(f"acoustic code: expected [0, "
                       f"{self.acoustic_codebook_size}), found {code}")
    return self.acoustic_offset(level) + code

  @property
  def size(self) -> int:
    """Ids in use: 2 + K + Q * N."""
    return self.acoustic_base + self.acoustic_levels * self.acoustic_codebook_size

  @property
  def padded_size(self) -> int:
    """``size`` rounded up to ``constants.VOCAB_PAD_MULTIPLE`` (gin's size)."""
    return _round_up(self.size, constants.VOCAB_PAD_MULTIPLE)

  def describe(self, lm_id: int) -> Tuple[str, int, int]:
    """Says what an LM id is: ``(kind, level, raw)``.

    ``kind`` is one of ``"pad"``, ``"eos"``, ``"semantic"``, ``"acoustic"``,
    ``"unused"`` (padding ids above ``size``); ``level`` is the acoustic level
    (0-based) or -1; ``raw`` is the tokenizer-native id or -1.
    """
    lm_id = int(lm_id)
    if lm_id == self.pad_id:
      return ("pad", -1, -1)
    if lm_id == self.eos_id:
      return ("eos", -1, -1)
    if self.semantic_offset <= lm_id < self.acoustic_base:
      return ("semantic", -1, lm_id - self.semantic_offset)
    if self.acoustic_base <= lm_id < self.size:
      level, code = divmod(lm_id - self.acoustic_base,
                           self.acoustic_codebook_size)
      return ("acoustic", level, code)
    if self.size <= lm_id < self.padded_size:
      return ("unused", -1, -1)
    raise ValueError(f"LM id: expected [0, {self.padded_size}), found {lm_id}")

  def seqio_vocabulary(self) -> seqio.PassThroughVocabulary:
    """A ``seqio.PassThroughVocabulary`` of ``padded_size`` ids, EOS = 1."""
    import seqio  # pylint: disable=g-import-not-at-top  # the layout needs no seqio
    return seqio.PassThroughVocabulary(size=self.padded_size,
                                       eos_id=constants.EOS_ID)


# The paper's layout: K = 1024, Q = 12, N = 1024 -> 13314 ids, padded to 13440.
PAPER_LAYOUT = VocabularyLayout.from_sizes(
    semantic_codebook_size=constants.SEMANTIC_CODEBOOK_SIZE,
    acoustic_levels=constants.ACOUSTIC_LEVELS,
    acoustic_codebook_size=constants.ACOUSTIC_CODEBOOK_SIZE)
PAPER_VOCAB_SIZE = PAPER_LAYOUT.size  # 13314
PAPER_PADDED_VOCAB_SIZE = PAPER_LAYOUT.padded_size  # 13440

# The piano variant: the paper's K with a codec of 3 levels x 2^14 codes.
PIANO_LAYOUT = VocabularyLayout.from_sizes(
    semantic_codebook_size=constants.SEMANTIC_CODEBOOK_SIZE,
    acoustic_levels=constants.PIANO_ACOUSTIC_LEVELS,
    acoustic_codebook_size=constants.PIANO_ACOUSTIC_CODEBOOK_SIZE)
PIANO_VOCAB_SIZE = PIANO_LAYOUT.size  # 50178
PIANO_PADDED_VOCAB_SIZE = PIANO_LAYOUT.padded_size  # 50304
