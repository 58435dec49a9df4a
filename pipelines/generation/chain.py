"""AudioLM's generation chain: semantic -> coarse -> fine -> codec decoder.

:class:`Generator` chains three :class:`~.stage_model.StageModel` s (T5X
checkpoints, or stand-ins in tests) over a batch of prompts, in one of the
paper's three modes:

* ``continuation``: a prompt's first ``prompt_seconds`` go in; stage 1
  continues its semantic tokens, stage 2 generates coarse tokens for prompt +
  continuation with the prompt's own coarse frames forced as the start of the
  target (speaker and recording conditions carry over), stage 3 fills in the
  fine levels, the codec decodes. The WAV's first ``prompt_seconds`` are the
  prompt's own samples.
* ``unconditional``: no prompt at all.
* ``resynthesis`` (acoustic-only): the real semantic tokens of the first
  ``seconds`` of a recording go to stages 2 and 3; with ``prompt_seconds > 0``
  its first coarse frames are forced too, as in continuation.

Lengths, in whole frames: ``S = ceil(seconds x 25)`` semantic frames,
``T = 2 S`` acoustic frames; the waveform is ``T x 320`` samples cut to
``round(seconds x 16000)``. The prompt must be a whole number of semantic
frames (``prompt_seconds x 25`` an integer: 3 s = 75 frames, 150 acoustic
frames).

Stage inputs match training (:mod:`audiolm_t5x.tasks.stages`):

* stage 1: ``inputs`` = the prompt's semantic tokens deduplicated
  (``preprocessors.dedup_consecutive_example``, as the prompt task
  ``audiolm_semantic_prompt_v001`` does), then ``S - P`` new tokens (P = the
  prompt's frames). Stage 1 models deduplicated sequences, so each new token
  stands for one or more frames; ``semantic`` in the output is the prompt's
  raw frames followed by the new tokens (S ids).
* stage 2: ``inputs`` = that whole semantic sequence deduplicated again
  (a run crossing the prompt's end is kept once), ``targets`` = ``T x Q'``
  coarse ids, frame-major, the first ``2 P`` frames forced.
* stage 3: non-overlapping windows of ``fine_window_seconds`` (3 s = 150
  frames; the last one shorter) of the coarse frames; ``inputs`` = a window's
  coarse ids, ``targets`` = its ``frames x (Q - Q')`` fine ids. Windows of
  every sample of every prompt go to the model in one call. In continuation
  the prompt's own fine frames are forced where a window covers them (a window
  that lies wholly in the prompt is copied, not sampled).

Every stage's ids are checked against its constraint before decoding; an id
out of range raises :class:`~.constraints.GenerationError` naming the stage,
the prompt, the sample and the position.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import List, Optional, Sequence

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines.generation import constraints as constraints_lib
from audiolm_t5x.pipelines.generation import stage_model as stage_model_lib
from audiolm_t5x.tasks import vocabulary as vocabulary_lib

CONTINUATION = "continuation"
UNCONDITIONAL = "unconditional"
RESYNTHESIS = "resynthesis"
MODES = (CONTINUATION, UNCONDITIONAL, RESYNTHESIS)

GenerationError = constraints_lib.GenerationError
SamplingSettings = stage_model_lib.SamplingSettings


def _whole(value: float) -> int:
  return int(math.ceil(value - 1e-9))


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
  """What to generate (the paper's defaults)."""

  seconds: float = constants.CONTINUATION_SECONDS
  prompt_seconds: float = constants.PROMPT_SECONDS
  semantic: SamplingSettings = SamplingSettings(constants.SEMANTIC_TEMPERATURE)
  coarse: SamplingSettings = SamplingSettings(constants.COARSE_TEMPERATURE)
  fine: SamplingSettings = SamplingSettings(constants.FINE_TEMPERATURE)
  fine_window_seconds: float = constants.FINE_CROP_SECONDS
  num_samples: int = 1
  seed: int = 0

  def __post_init__(self):
    steps = self.prompt_seconds * constants.SEMANTIC_RATE_HZ
    if self.prompt_seconds < 0 or abs(steps - round(steps)) > 1e-6:
      raise ValueError(
          f"prompt_seconds: expected a whole number of semantic frames "
          f"({1 / constants.SEMANTIC_RATE_HZ:g} s each), found "
          f"{self.prompt_seconds}")
    if self.seconds <= self.prompt_seconds:
      raise ValueError(f"seconds: expected more than prompt_seconds="
                       f"{self.prompt_seconds}, found {self.seconds}")
    if self.num_samples < 1:
      raise ValueError(f"num_samples: expected >= 1, found {self.num_samples}")
    if self.window_frames < 1:
      raise ValueError(f"fine_window_seconds: expected at least one acoustic "
                       f"frame, found {self.fine_window_seconds}")

  @property
  def semantic_frames(self) -> int:
    """S: semantic frames of the whole output (prompt included)."""
    return _whole(self.seconds * constants.SEMANTIC_RATE_HZ)

  @property
  def prompt_frames(self) -> int:
    """P: semantic frames of the prompt."""
    return int(round(self.prompt_seconds * constants.SEMANTIC_RATE_HZ))

  @property
  def acoustic_frames(self) -> int:
    """T = 2 S acoustic frames."""
    return self.semantic_frames * constants.ACOUSTIC_FRAMES_PER_SEMANTIC

  @property
  def prompt_acoustic_frames(self) -> int:
    return self.prompt_frames * constants.ACOUSTIC_FRAMES_PER_SEMANTIC

  @property
  def num_audio_samples(self) -> int:
    return int(round(self.seconds * constants.SAMPLE_RATE))

  @property
  def prompt_audio_samples(self) -> int:
    return self.prompt_frames * constants.SEMANTIC_FRAME_SAMPLES

  @property
  def window_frames(self) -> int:
    return int(round(self.fine_window_seconds * constants.ACOUSTIC_RATE_HZ))

  def sampled_windows(self, mode: str) -> int:
    """Stage-3 windows sampled per row (windows inside the prompt are copied)."""
    known = 0 if mode == UNCONDITIONAL else self.prompt_acoustic_frames
    t, w = self.acoustic_frames, self.window_frames
    return sum(1 for start in range(0, t, w) if min(start + w, t) > known)

  def needed_samples(self, mode: str) -> int:
    """Audio a prompt must have for ``mode`` (0 for unconditional)."""
    if mode == UNCONDITIONAL:
      return 0
    if mode == RESYNTHESIS:
      return self.semantic_frames * constants.SEMANTIC_FRAME_SAMPLES
    return self.prompt_audio_samples


@dataclasses.dataclass
class Prompt:
  """A prompt: tokens of a recording's start (and its audio, when known).

  ``semantic`` [T_s] and ``acoustic`` [T_a, Q] are tokenizer-native ids of at
  least the part the mode needs (continuation: the prompt; resynthesis: the
  first ``seconds``); ``waveform`` is 16 kHz float32 audio of the same start,
  or None (prompts read from a token dataset).
  """

  prompt_id: str
  semantic: np.ndarray
  acoustic: np.ndarray
  waveform: Optional[np.ndarray] = None
  path: str = ""
  speaker_id: int = -1
  transcript: str = ""


@dataclasses.dataclass
class Sample:
  """One generated sample (tokenizer-native ids) and its audio."""

  prompt_id: str
  sample_index: int
  mode: str
  semantic: np.ndarray  # [S]
  coarse: np.ndarray  # [T, Q']
  fine: np.ndarray  # [T, Q - Q']
  codes: np.ndarray  # [T, Q]
  waveform: Optional[np.ndarray]  # [round(seconds x 16000)] float32
  prompt: Optional[Prompt] = None


def unconditional_prompt(index: int, *, acoustic_levels: int) -> Prompt:
  """The placeholder of unconditional row ``index``: ``unconditional-<index>``."""
  return Prompt(prompt_id=f"{UNCONDITIONAL}-{index}",
                semantic=np.zeros([0], np.int64),
                acoustic=np.zeros([0, acoustic_levels], np.int64))


def dedup(tokens: np.ndarray) -> np.ndarray:
  """Removes consecutive repeats exactly as the training tasks do.

  Runs :func:`audiolm_t5x.tasks.preprocessors.dedup_consecutive_example` (the
  function the stage tasks map over their crops) eagerly.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from audiolm_t5x.tasks import preprocessors  # pylint: disable=g-import-not-at-top

  out = preprocessors.dedup_consecutive_example(
      {contract.SEMANTIC_TOKENS: tf.constant(np.asarray(tokens, np.int64))})
  return out[contract.SEMANTIC_TOKENS].numpy()


def row_seed(seed: int, prompt_id: str, sample_index: int, stage: int,
             start: int = 0) -> int:
  """The seed of one sampled sequence: (run seed, prompt, sample, stage, window).

  A sample therefore depends only on the run's seed, its prompt's id and its
  index (and the models), never on the other prompts of its batch, the batch
  size or the batch number.
  """
  key = zlib.crc32(prompt_id.encode("utf-8"))
  return int(np.random.SeedSequence(
      [seed, key, sample_index, stage, start]).generate_state(1)[0]
             & 0x7FFFFFFF)


class Generator:
  """The three stages and the codec, chained.

  Args:
    semantic_model, coarse_model, fine_model: the stages (``fine_model`` None
      for a codec whose acoustic stage predicts all levels, e.g. the piano).
    layout: the vocabulary layout of the tokens the models were trained on.
    coarse_levels: Q' (= Q without a fine stage).
    codec: an acoustic tokenizer with ``decode([T, Q]) -> waveform`` (Lyra,
      DAC), or None to return tokens only.
  """

  def __init__(self, *, semantic_model: stage_model_lib.StageModel,
               coarse_model: stage_model_lib.StageModel,
               fine_model: Optional[stage_model_lib.StageModel],
               layout: vocabulary_lib.VocabularyLayout,
               coarse_levels: int = constants.COARSE_LEVELS, codec=None):
    q = layout.acoustic_levels
    if fine_model is None and coarse_levels != q:
      raise ValueError(f"without a fine stage the acoustic stage must predict "
                       f"all Q={q} levels, found coarse_levels={coarse_levels}")
    for name, model in (("semantic", semantic_model), ("coarse", coarse_model),
                        ("fine", fine_model)):
      if model is not None and model.vocab_size < layout.size:
        raise ValueError(
            f"the {name} model's vocabulary has {model.vocab_size} ids; the "
            f"tokens (K={layout.semantic_codebook_size}, Q={q}, "
            f"N={layout.acoustic_codebook_size}) need {layout.size}")
    self.models = {constraints_lib.SEMANTIC: semantic_model,
                   constraints_lib.COARSE: coarse_model,
                   constraints_lib.FINE: fine_model}
    self.layout = layout
    self.coarse_levels = coarse_levels
    self.codec = codec
    self.constraints = {
        constraints_lib.SEMANTIC: constraints_lib.semantic(layout),
        constraints_lib.COARSE: constraints_lib.coarse(
            layout, coarse_levels=coarse_levels),
    }
    if fine_model is not None:
      self.constraints[constraints_lib.FINE] = constraints_lib.fine(
          layout, coarse_levels=coarse_levels)

  # --- checks -----------------------------------------------------------------
  def check_prompt(self, prompt: Prompt, *, mode: str,
                   settings: GenerationSettings) -> None:
    """Raises GenerationError if ``prompt`` is too short or malformed."""
    need = settings.needed_samples(mode)
    frames = need // constants.SEMANTIC_FRAME_SAMPLES
    sem = np.asarray(prompt.semantic)
    ac = np.asarray(prompt.acoustic)
    if sem.shape[0] < frames or ac.shape[0] < 2 * frames:
      raise GenerationError(
          f"prompt {prompt.prompt_id!r}: {mode} needs "
          f"{need / constants.SAMPLE_RATE:g} s ({frames} semantic frames), "
          f"found {sem.shape[0]} semantic frames / {ac.shape[0]} acoustic "
          "frames")
    if ac.ndim != 2 or ac.shape[1] != self.layout.acoustic_levels:
      raise GenerationError(
          f"prompt {prompt.prompt_id!r}: acoustic tokens of shape {ac.shape}, "
          f"expected [T, {self.layout.acoustic_levels}]")
    if ((sem.size and (sem.min() < 0 or
                       sem.max() >= self.layout.semantic_codebook_size)) or
        (ac.size and (ac.min() < 0 or
                      ac.max() >= self.layout.acoustic_codebook_size))):
      raise GenerationError(
          f"prompt {prompt.prompt_id!r}: token ids outside K="
          f"{self.layout.semantic_codebook_size} / N="
          f"{self.layout.acoustic_codebook_size}")
    if (prompt.waveform is not None and mode != UNCONDITIONAL and
        len(prompt.waveform) < need):
      raise GenerationError(
          f"prompt {prompt.prompt_id!r}: {len(prompt.waveform)} samples, "
          f"{mode} needs {need}")

  # --- the chain ----------------------------------------------------------------
  def generate(self, prompts: Sequence[Optional[Prompt]], *, mode: str,
               settings: GenerationSettings) -> List[Sample]:
    """Generates ``settings.num_samples`` samples per prompt.

    Args:
      prompts: the prompts. For ``unconditional``, one row per entry: a
        :func:`unconditional_prompt` (names the output) or None; their tokens
        are not read.
      mode: ``continuation``, ``unconditional`` or ``resynthesis``.
      settings: lengths, sampling, seed. Every sampled sequence has its own
        seed (:func:`row_seed`, from ``settings.seed``, the prompt id, the
        sample index, the stage and the stage-3 window), so a sample is the
        same in any batch.

    Returns:
      Samples in order: prompt 0's samples 0..n-1, then prompt 1's, ...
    """
    if mode not in MODES:
      raise ValueError(f"mode: expected one of {MODES}, found {mode!r}")
    rows = []  # (prompt or None, sample index)
    for p in prompts:
      if mode != UNCONDITIONAL:
        if p is None:
          raise ValueError(f"{mode} needs a prompt in every row")
        self.check_prompt(p, mode=mode, settings=settings)
      rows += [(p, k) for k in range(settings.num_samples)]
    if not rows:
      return []
    semantic = self._semantic(rows, mode, settings)
    coarse = self._coarse(rows, semantic, mode, settings)
    fine = self._fine(rows, coarse, mode, settings)
    samples = []
    for i, (p, k) in enumerate(rows):
      codes = np.concatenate([coarse[i], fine[i]], axis=1)
      samples.append(Sample(
          prompt_id=(p.prompt_id if p is not None else f"{UNCONDITIONAL}-{i}"),
          sample_index=k, mode=mode, semantic=semantic[i], coarse=coarse[i],
          fine=fine[i], codes=codes, waveform=None, prompt=p))
    if self.codec is not None:
      for s in samples:
        s.waveform = self.decode(s, settings)
    return samples

  @staticmethod
  def _row_seed(rows, i, settings, stage: int, start: int = 0) -> int:
    p, k = rows[i]
    prompt_id = p.prompt_id if p is not None else f"{UNCONDITIONAL}-{i}"
    return row_seed(settings.seed, prompt_id, k, stage, start)

  def _where(self, rows, i) -> str:
    p, k = rows[i]
    return f", prompt {p.prompt_id if p else '(none)'!r} sample {k}"

  def _run(self, stage: str, rows, requests, settings_: SamplingSettings,
           seed: int) -> List[np.ndarray]:
    model = self.models[stage]
    constraint = self.constraints[stage]
    out = model.generate(requests, constraint=constraint, sampling=settings_,
                         seed=seed)
    if len(out) != len(requests):
      raise GenerationError(f"stage {stage}: the model returned {len(out)} "
                            f"sequences for {len(requests)} requests")
    for i, (r, ids) in enumerate(zip(requests, out)):
      ids = np.asarray(ids, np.int64)
      where = self._where(rows, i) if rows is not None else f", row {i}"
      if ids.shape != (r.length,):
        raise GenerationError(
            f"stage {constraints_lib.STAGE_NUMBER[stage]} ({stage}){where}: "
            f"expected {r.length} target ids, found shape {ids.shape}")
      if not np.array_equal(ids[:len(r.forced)], r.forced):
        raise GenerationError(
            f"stage {constraints_lib.STAGE_NUMBER[stage]} ({stage}){where}: "
            "the forced start of the target was not kept")
      constraint.check(ids, where=where)
    return out

  def _semantic(self, rows, mode, settings) -> List[np.ndarray]:
    s_all, p = settings.semantic_frames, settings.prompt_frames
    c = self.constraints[constraints_lib.SEMANTIC]
    if mode == RESYNTHESIS:
      return [np.asarray(pr.semantic[:s_all], np.int64) for pr, _ in rows]
    requests, heads = [], []
    for i, (pr, _) in enumerate(rows):
      head = (np.asarray(pr.semantic[:p], np.int64) if mode == CONTINUATION
              else np.zeros([0], np.int64))
      heads.append(head)
      inputs = constraints_lib.to_lm(c, dedup(head)) if head.size else head
      requests.append(stage_model_lib.Request(
          inputs=inputs, forced=np.zeros([0], np.int64),
          length=s_all - head.size,
          seed=self._row_seed(rows, i, settings, 1)))
    out = self._run(constraints_lib.SEMANTIC, rows, requests,
                    settings.semantic, settings.seed)
    return [np.concatenate([h, constraints_lib.to_raw(c, ids,
                                                      layout=self.layout)])
            for h, ids in zip(heads, out)]

  def _coarse(self, rows, semantic, mode, settings) -> List[np.ndarray]:
    c_sem = self.constraints[constraints_lib.SEMANTIC]
    c = self.constraints[constraints_lib.COARSE]
    q = self.coarse_levels
    t_all, t_p = settings.acoustic_frames, settings.prompt_acoustic_frames
    requests = []
    for i, ((pr, _), sem) in enumerate(zip(rows, semantic)):
      forced = np.zeros([0], np.int64)
      if mode != UNCONDITIONAL and t_p:
        forced = constraints_lib.to_lm(
            c, np.asarray(pr.acoustic[:t_p, :q], np.int64))
      requests.append(stage_model_lib.Request(
          inputs=constraints_lib.to_lm(c_sem, dedup(sem)), forced=forced,
          length=t_all * q, seed=self._row_seed(rows, i, settings, 2)))
    out = self._run(constraints_lib.COARSE, rows, requests, settings.coarse,
                    settings.seed)
    return [constraints_lib.to_raw(c, ids, layout=self.layout) for ids in out]

  def _fine(self, rows, coarse, mode, settings) -> List[np.ndarray]:
    q, q_all = self.coarse_levels, self.layout.acoustic_levels
    t_all, w = settings.acoustic_frames, settings.window_frames
    if self.models[constraints_lib.FINE] is None:
      return [np.zeros([t_all, 0], np.int64) for _ in rows]
    c_coarse = self.constraints[constraints_lib.COARSE]
    c = self.constraints[constraints_lib.FINE]
    known = (settings.prompt_acoustic_frames if mode != UNCONDITIONAL else 0)
    fine = [np.zeros([t_all, q_all - q], np.int64) for _ in rows]
    requests, where, window_rows = [], [], []
    for i, ((pr, _), co) in enumerate(zip(rows, coarse)):
      if known:
        fine[i][:known] = pr.acoustic[:known, q:]
      for start in range(0, t_all, w):
        stop = min(start + w, t_all)
        if stop <= known:
          continue  # wholly inside the prompt: its own fine frames
        forced = (constraints_lib.to_lm(c, fine[i][start:known])
                  if known > start else np.zeros([0], np.int64))
        requests.append(stage_model_lib.Request(
            inputs=constraints_lib.to_lm(c_coarse, co[start:stop]),
            forced=forced, length=(stop - start) * (q_all - q),
            seed=self._row_seed(rows, i, settings, 3, start)))
        where.append((i, start, stop))
        window_rows.append(rows[i])
    if requests:
      out = self._run(constraints_lib.FINE, window_rows, requests,
                      settings.fine, settings.seed)
      for (i, start, stop), ids in zip(where, out):
        fine[i][start:stop] = constraints_lib.to_raw(c, ids,
                                                     layout=self.layout)
    return fine

  # --- audio --------------------------------------------------------------------
  def decode(self, sample: Sample, settings: GenerationSettings) -> np.ndarray:
    """Codes -> waveform of exactly ``settings.num_audio_samples`` samples.

    In continuation (and resynthesis with a prompt) the prompt's own samples
    replace the decoded ones where the prompt has audio.
    """
    codes = np.asarray(sample.codes, np.int64)
    n = self.layout.acoustic_codebook_size
    if codes.size and (codes.min() < 0 or codes.max() >= n):
      raise GenerationError(f"prompt {sample.prompt_id!r} sample "
                            f"{sample.sample_index}: codes outside [0, {n})")
    audio = np.asarray(self.codec.decode(codes), np.float32).reshape(-1)
    frames = contract.fit_length(
        audio[:codes.shape[0] * constants.ACOUSTIC_FRAME_SAMPLES].reshape(
            -1, constants.ACOUSTIC_FRAME_SAMPLES), codes.shape[0])
    audio = frames.reshape(-1)[:settings.num_audio_samples].copy()
    p = sample.prompt
    if (p is not None and p.waveform is not None and
        sample.mode != UNCONDITIONAL):
      keep = min(settings.prompt_audio_samples, len(p.waveform))
      audio[:keep] = np.asarray(p.waveform[:keep], np.float32)
    return audio
