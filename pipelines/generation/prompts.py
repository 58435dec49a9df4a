"""Where prompts come from: audio files (tokenized here) or a token dataset.

* A folder of audio files (searched recursively, sorted) or a comma-separated
  list of files: each file is decoded to 16 kHz mono and the part the mode
  needs (the first ``prompt_seconds``, or ``seconds`` for resynthesis) is
  tokenized with the same tokenizers the training data was made with
  (:class:`PromptTokenizer`, built from the tokenization job's flags).
* A token dataset (a folder with ``dataset_info.json``, the tokenization
  job's output): its records are the prompts, tokens as stored; the audio is
  not in the records, so the WAV's prompt part is the codec's decoding of the
  prompt's codes.

A prompt too short for the mode or unreadable is skipped with a reason
(:class:`Skipped`); the rest go on.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
import re
from typing import Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x import contract
from audiolm_t5x.pipelines import audio as audio_lib
from audiolm_t5x.pipelines import corpus as corpus_lib
from audiolm_t5x.pipelines import tokenize_audio
from audiolm_t5x.pipelines.generation import chain as chain_lib
from audiolm_t5x.pipelines.tokenizers import kmeans

_SPEAKER_RE = re.compile(r"^(\d+)-\d+-\d+$")


@dataclasses.dataclass(frozen=True)
class Skipped:
  """A prompt that was not generated from, and why."""

  prompt_id: str
  path: str
  reason: str

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)


def is_token_dataset(spec: str) -> bool:
  """True where ``spec`` is a folder with the tokenization job's info file."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  return ("," not in spec and FileSystems.exists(
      posixpath.join(spec, contract.DATASET_INFO_FILENAME)))


def list_audio(spec: str) -> List[str]:
  """Audio files of a folder (recursive) or a comma-separated list, sorted.

  Raises:
    FileNotFoundError: a listed file or the folder does not exist, or the
      folder holds no audio.
  """
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  parts = [s for s in spec.split(",") if s]
  if not parts:
    raise FileNotFoundError("--prompts is empty")
  if len(parts) == 1 and (os.path.isdir(parts[0]) or "://" in parts[0] and
                          not corpus_lib.is_audio(parts[0])):
    root = parts[0].rstrip("/")
    if os.path.isdir(root):
      found = [os.path.join(d, f) for d, _, files in os.walk(root)
               for f in files if corpus_lib.is_audio(f)]
    else:
      found = [m.path for r in FileSystems.match([root + "/**"])
               for m in r.metadata_list if corpus_lib.is_audio(m.path)]
    if not found:
      raise FileNotFoundError(f"{root}: no audio files (looked for "
                              f"{', '.join(corpus_lib.AUDIO_SUFFIXES)})")
    return sorted(found)
  missing = [p for p in parts if not FileSystems.exists(p)]
  if missing:
    raise FileNotFoundError(f"prompt files not found: {', '.join(missing)}")
  return sorted(parts)


def _transcript(path: str, prompt_id: str) -> str:
  """The LibriSpeech transcript line of ``prompt_id`` beside ``path``, or ''."""
  folder = os.path.dirname(path)
  m = _SPEAKER_RE.match(prompt_id)
  if not m or not os.path.isdir(folder):
    return ""
  speaker, chapter, _ = prompt_id.split("-")
  trans = os.path.join(folder, f"{speaker}-{chapter}"
                       f"{corpus_lib.TRANSCRIPT_SUFFIX}")
  if not os.path.isfile(trans):
    return ""
  with open(trans, encoding="utf-8") as f:
    try:
      return corpus_lib.parse_transcripts(f.read(), path=trans).get(
          prompt_id, "")
    except corpus_lib.CorpusError:
      return ""


def prompt_id_of(path: str) -> str:
  name = posixpath.basename(path.replace("\\", "/"))
  return name.rsplit(".", 1)[0] if "." in name else name


class PromptTokenizer:
  """The tokenization job's tokenizers, for prompts given as audio.

  Built from a :class:`~audiolm_t5x.pipelines.tokenize_audio.TokenizerSpec`
  (picklable), loaded once (``load``); also the codec that decodes.
  """

  def __init__(self, spec: tokenize_audio.TokenizerSpec):
    self.spec = spec
    self.semantic = self.acoustic = self.codebook = None

  def load(self) -> "PromptTokenizer":
    if self.acoustic is None:
      self.semantic, self.acoustic = self.spec.build()
      self.acoustic.load()
      if self.spec.codebook:
        self.semantic.load()
        self.codebook = kmeans.KMeansCodebook.load(self.spec.codebook)
    return self

  def tokenize(self, waveform: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """16 kHz audio -> (semantic [T_s], acoustic [T_a, Q]) raw ids."""
    self.load()
    if self.codebook is None:
      raise ValueError("prompts given as audio need the semantic codebook "
                       "(--kmeans)")
    sem = self.codebook.quantize(self.semantic.embed(waveform))
    sem = contract.fit_length(sem, contract.num_semantic_frames(len(waveform)))
    ac = self.acoustic.encode(waveform)
    return np.asarray(sem, np.int64), np.asarray(ac, np.int64)


def prompt_from_audio(path: str, tokenizer: PromptTokenizer, *, mode: str,
                      settings: chain_lib.GenerationSettings
                      ) -> Union[chain_lib.Prompt, Skipped]:
  """Reads and tokenizes the start of one audio file, or says why not."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top
  pid = prompt_id_of(path)
  need = settings.needed_samples(mode)
  try:
    with FileSystems.open(path) as f:
      wave = audio_lib.decode(f.read())
  except (audio_lib.AudioError, OSError) as e:
    return Skipped(pid, path, f"unreadable: {e}")
  if len(wave) < need:
    return Skipped(pid, path, (
        f"too short: {len(wave) / constants.SAMPLE_RATE:.2f} s, {mode} needs "
        f"{need / constants.SAMPLE_RATE:g} s"))
  head = wave[:need]
  if not np.any(head):
    return Skipped(pid, path, "digital silence in the prompt")
  sem, ac = tokenizer.tokenize(head)
  m = _SPEAKER_RE.match(pid)
  return chain_lib.Prompt(
      prompt_id=pid, semantic=sem, acoustic=ac, waveform=head, path=path,
      speaker_id=int(m.group(1)) if m else -1,
      transcript=_transcript(path, pid))


def prompt_from_record(record: contract.TokenRecord, *, mode: str,
                       settings: chain_lib.GenerationSettings,
                       dataset_dir: str = ""
                       ) -> Union[chain_lib.Prompt, Skipped]:
  """A token record as a prompt (tokens as stored, no audio)."""
  need = settings.needed_samples(mode)
  if record.num_samples < need:
    return Skipped(record.id, record.source, (
        f"too short: {record.num_samples / constants.SAMPLE_RATE:.2f} s, "
        f"{mode} needs {need / constants.SAMPLE_RATE:g} s"))
  s = need // constants.SEMANTIC_FRAME_SAMPLES
  return chain_lib.Prompt(
      prompt_id=record.id.replace("/", "_"),
      semantic=np.asarray(record.semantic_tokens[:s], np.int64),
      acoustic=np.asarray(record.acoustic_tokens[:2 * s], np.int64),
      waveform=None,
      path=(posixpath.join(dataset_dir, record.split, record.source)
            if dataset_dir else record.source),
      speaker_id=int(record.speaker_id), transcript=record.transcript)


def read_records(dataset_dir: str, *, split: Optional[str] = None
                 ) -> Iterator[contract.TokenRecord]:
  """Records of a token dataset (all splits, or one), sorted by id."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  info = contract.DatasetInfo.load(dataset_dir)
  splits = [split] if split else sorted(info.splits)
  unknown = [s for s in splits if s not in info.splits]
  if unknown:
    raise ValueError(f"{dataset_dir}: no split {unknown[0]!r} (has "
                     f"{sorted(info.splits)})")
  records = []
  for s in splits:
    for path in sorted(tf.io.gfile.glob(info.shard_pattern(dataset_dir, s))):
      for data in tf.data.TFRecordDataset(path).as_numpy_iterator():
        records.append(contract.TokenRecord.from_example_bytes(
            data, acoustic_levels=info.acoustic_levels))
  yield from sorted(records, key=lambda r: r.id)


def check_tokenizers(dataset_dir: str, tokenizer: PromptTokenizer) -> None:
  """Refuses a codec other than the one that made a token dataset."""
  info = contract.DatasetInfo.load(dataset_dir)
  ac = tokenizer.load().acoustic.info()
  if ac.get("fingerprint") != info.acoustic.get("fingerprint"):
    raise ValueError(
        f"{dataset_dir}: its acoustic tokens were made by "
        f"{info.acoustic.get('name')} (fingerprint "
        f"{info.acoustic.get('fingerprint')}), but the codec flags give "
        f"{ac.get('name')} (fingerprint {ac.get('fingerprint')}); pass the "
        "tokenization job's --acoustic_backend / --acoustic_option flags")


def prompts_of(items: Sequence[Union[chain_lib.Prompt, Skipped]]
               ) -> Tuple[List[chain_lib.Prompt], List[Skipped]]:
  return ([p for p in items if isinstance(p, chain_lib.Prompt)],
          [p for p in items if isinstance(p, Skipped)])
