"""Registers the AudioLM SeqIO tasks and mixtures (registration only).

``import audiolm_t5x.tasks.audiolm`` (or gin's ``import``) registers them;
nothing reads data until a dataset is built. Point them at the tokenization
job's output with ``AUDIOLM_DATA_DIR`` / ``AUDIOLM_PIANO_DATA_DIR`` or gin
(``audiolm_tasks.speech_corpus.data_dir``); see
:mod:`audiolm_t5x.tasks.stages` for every option.

Each task lists its steps where it is registered (as t5's task modules do):
the deterministic ones before ``seqio.CacheDatasetPlaceholder`` (parse the
records, map to LM ids, keep what the stage needs), the random ones after it
(time-aligned crop, deduplication, flattening, ``inputs``/``targets``).
Steps that need the corpus's options (data directory, layout, crop lengths,
Q') are :mod:`audiolm_t5x.tasks.stages`'s; the others are
:mod:`audiolm_t5x.tasks.preprocessors`'.

Every task has splits ``train`` and ``validation``. Stage 1 emits ``targets``
only; the others emit ``inputs`` and ``targets`` for T5X's decoder-only model
with ``inputs_bidirectional_attention = True`` (prefix LM, loss on targets).
The stage-1 prompt tasks are for sampling only (``t5x.infer``): ``inputs`` is
a 3 s prompt for the causal stage-1 model to continue, ``targets`` the real
rest of the 10 s crop.
Ids follow :mod:`audiolm_t5x.tasks.vocabulary`; EOS ends ``targets`` only
when the crop reaches its recording's end.
"""

import functools

import seqio

from audiolm_t5x import constants
from audiolm_t5x import contract
from . import preprocessors as prep
from . import stages
from . import vocabulary

SEMANTIC_TASK = "audiolm_semantic_v001"
COARSE_TASK = "audiolm_coarse_v001"
FINE_TASK = "audiolm_fine_v001"
PIANO_SEMANTIC_TASK = "audiolm_piano_semantic_v001"
PIANO_ACOUSTIC_TASK = "audiolm_piano_acoustic_v001"
SEMANTIC_PROMPT_TASK = "audiolm_semantic_prompt_v001"
PIANO_SEMANTIC_PROMPT_TASK = "audiolm_piano_semantic_prompt_v001"
ACOUSTIC_MIXTURE = "audiolm_acoustic_v001"

# Corpus and stage of each task (for tools such as tasks.inspect_task).
TASK_STAGES = {
    SEMANTIC_TASK: (stages.SPEECH, stages.SEMANTIC),
    COARSE_TASK: (stages.SPEECH, stages.COARSE),
    FINE_TASK: (stages.SPEECH, stages.FINE),
    PIANO_SEMANTIC_TASK: (stages.PIANO, stages.SEMANTIC),
    PIANO_ACOUSTIC_TASK: (stages.PIANO, stages.ACOUSTIC),
    SEMANTIC_PROMPT_TASK: (stages.SPEECH, stages.SEMANTIC_PROMPT),
    PIANO_SEMANTIC_PROMPT_TASK: (stages.PIANO, stages.SEMANTIC_PROMPT),
}

# Vocabulary size of each task (the gin files' vocab_size).
VOCAB_SIZES = {
    SEMANTIC_TASK: vocabulary.PAPER_PADDED_VOCAB_SIZE,  # 13440
    COARSE_TASK: vocabulary.PAPER_PADDED_VOCAB_SIZE,
    FINE_TASK: vocabulary.PAPER_PADDED_VOCAB_SIZE,
    PIANO_SEMANTIC_TASK: vocabulary.PIANO_PADDED_VOCAB_SIZE,  # 50304
    PIANO_ACOUSTIC_TASK: vocabulary.PIANO_PADDED_VOCAB_SIZE,
    SEMANTIC_PROMPT_TASK: vocabulary.PAPER_PADDED_VOCAB_SIZE,
    PIANO_SEMANTIC_PROMPT_TASK: vocabulary.PIANO_PADDED_VOCAB_SIZE,
}

_SPEECH = dict(acoustic_levels=constants.ACOUSTIC_LEVELS,
               coarse_levels=constants.COARSE_LEVELS)
_PIANO = dict(acoustic_levels=constants.PIANO_ACOUSTIC_LEVELS,
              coarse_levels=constants.PIANO_ACOUSTIC_LEVELS)

# Longest inputs / targets each task's default crops produce (targets + 1 EOS):
# semantic 30 s x 25 Hz = 750 (+1); coarse 10 s: 250 semantic in, 500 frames x
# 4 levels = 2000 (+1) out; fine 3 s: 150 frames x 4 in = 600, x 8 = 1200 (+1)
# out; piano acoustic 10 s: 250 in, 500 x 3 = 1500 (+1) out; semantic
# prompts: 3 s x 25 Hz = 75 in, the other 7 s of the 10 s crop = 175 (+1) out.
TASK_FEATURE_LENGTHS = {
    SEMANTIC_TASK: stages.feature_lengths(
        stages.SEMANTIC, crop_seconds=constants.SEMANTIC_CROP_SECONDS, **_SPEECH),
    COARSE_TASK: stages.feature_lengths(
        stages.COARSE, crop_seconds=constants.COARSE_CROP_SECONDS, **_SPEECH),
    FINE_TASK: stages.feature_lengths(
        stages.FINE, crop_seconds=constants.FINE_CROP_SECONDS, **_SPEECH),
    PIANO_SEMANTIC_TASK: stages.feature_lengths(
        stages.SEMANTIC, crop_seconds=constants.SEMANTIC_CROP_SECONDS, **_PIANO),
    PIANO_ACOUSTIC_TASK: stages.feature_lengths(
        stages.ACOUSTIC, crop_seconds=constants.COARSE_CROP_SECONDS, **_PIANO),
    SEMANTIC_PROMPT_TASK: stages.feature_lengths(
        stages.SEMANTIC_PROMPT, crop_seconds=constants.CONTINUATION_SECONDS,
        prompt_seconds=constants.PROMPT_SECONDS, **_SPEECH),
    PIANO_SEMANTIC_PROMPT_TASK: stages.feature_lengths(
        stages.SEMANTIC_PROMPT, crop_seconds=constants.CONTINUATION_SECONDS,
        prompt_seconds=constants.PROMPT_SECONDS, **_PIANO),
}


def _features(name: str) -> dict:
  vocab = seqio.PassThroughVocabulary(size=VOCAB_SIZES[name],
                                      eos_id=constants.EOS_ID)
  features = {"targets": seqio.Feature(vocab, add_eos=False)}
  if "inputs" in TASK_FEATURE_LENGTHS[name]:
    features["inputs"] = seqio.Feature(vocab, add_eos=False)
  return features


def _register(name: str, preprocessors: list) -> None:
  corpus, _ = TASK_STAGES[name]
  seqio.TaskRegistry.add(
      name,
      source=stages.TokenRecordSource(corpus=corpus),
      preprocessors=preprocessors,
      output_features=_features(name),
  )


_p = functools.partial
_ID_N = (contract.ID, contract.NUM_SAMPLES)
SEM, AC = contract.SEMANTIC_TOKENS, contract.ACOUSTIC_TOKENS
SPEECH, PIANO = stages.SPEECH, stages.PIANO

# ----------------------------------------------------------------- speech ----
# Stage 1: 30 s crops of deduplicated semantic tokens -> targets.
_register(SEMANTIC_TASK, [
    _p(stages.parse_records, corpus=SPEECH),
    _p(prep.select_features, keys=_ID_N + (SEM,)),
    seqio.CacheDatasetPlaceholder(),
    _p(stages.crop, corpus=SPEECH, stage=stages.SEMANTIC),
    _p(prep.dedup_consecutive, key=SEM),
    _p(prep.make_lm_features, targets_key=SEM),
])
# Stage 2: 10 s crops; deduplicated semantic tokens -> coarse levels 1..Q'.
_register(COARSE_TASK, [
    _p(stages.parse_records, corpus=SPEECH),
    _p(stages.keep_coarse_levels, corpus=SPEECH),
    seqio.CacheDatasetPlaceholder(),
    _p(stages.crop, corpus=SPEECH, stage=stages.COARSE),
    _p(prep.dedup_consecutive, key=SEM),
    _p(prep.flatten_frames, key=AC),
    _p(prep.make_lm_features, inputs_key=SEM, targets_key=AC),
])
# Stage 3: 3 s crops; coarse levels 1..Q' -> fine levels Q'+1..Q.
_register(FINE_TASK, [
    _p(stages.parse_records, corpus=SPEECH),
    _p(prep.select_features, keys=_ID_N + (AC,)),
    seqio.CacheDatasetPlaceholder(),
    _p(stages.crop, corpus=SPEECH, stage=stages.FINE),
    _p(stages.split_coarse_fine, corpus=SPEECH),
    _p(prep.flatten_frames, key=prep.COARSE_TOKENS),
    _p(prep.flatten_frames, key=prep.FINE_TOKENS),
    _p(prep.make_lm_features, inputs_key=prep.COARSE_TOKENS,
       targets_key=prep.FINE_TOKENS),
])
# Stages 2 and 3 at equal rates: one prefix LM for both acoustic stages (an
# experiment; the paper trains one model per stage).
seqio.MixtureRegistry.add(ACOUSTIC_MIXTURE, [COARSE_TASK, FINE_TASK],
                          default_rate=1.0)

# ------------------------------------------------------------------ piano ----
# Piano stage 1: 30 s crops of deduplicated semantic tokens -> targets.
_register(PIANO_SEMANTIC_TASK, [
    _p(stages.parse_records, corpus=PIANO),
    _p(prep.select_features, keys=_ID_N + (SEM,)),
    seqio.CacheDatasetPlaceholder(),
    _p(stages.crop, corpus=PIANO, stage=stages.SEMANTIC),
    _p(prep.dedup_consecutive, key=SEM),
    _p(prep.make_lm_features, targets_key=SEM),
])
# Piano stage 2: 10 s crops; deduplicated semantic tokens -> all 3 levels.
_register(PIANO_ACOUSTIC_TASK, [
    _p(stages.parse_records, corpus=PIANO),
    seqio.CacheDatasetPlaceholder(),
    _p(stages.crop, corpus=PIANO, stage=stages.ACOUSTIC),
    _p(prep.dedup_consecutive, key=SEM),
    _p(prep.flatten_frames, key=AC),
    _p(prep.make_lm_features, inputs_key=SEM, targets_key=AC),
])

# -------------------------------------------------------- sampling prompts ----
# Stage 1 sampling: a 10 s crop at a seeded random start (as the training
# crops), deduplicated as one sequence; its first 3 s -> inputs (the prompt),
# the rest -> targets (the real continuation).
_register(SEMANTIC_PROMPT_TASK, [
    _p(stages.parse_records, corpus=SPEECH),
    _p(prep.select_features, keys=_ID_N + (SEM,)),
    seqio.CacheDatasetPlaceholder(),
    _p(stages.crop, corpus=SPEECH, stage=stages.SEMANTIC_PROMPT),
    _p(stages.dedup_and_split_prompt, corpus=SPEECH),
    _p(prep.make_lm_features, inputs_key=prep.PROMPT_TOKENS,
       targets_key=SEM),
])
# Piano stage 1 sampling: the same 3 s prompt / 10 s crop split.
_register(PIANO_SEMANTIC_PROMPT_TASK, [
    _p(stages.parse_records, corpus=PIANO),
    _p(prep.select_features, keys=_ID_N + (SEM,)),
    seqio.CacheDatasetPlaceholder(),
    _p(stages.crop, corpus=PIANO, stage=stages.SEMANTIC_PROMPT),
    _p(stages.dedup_and_split_prompt, corpus=PIANO),
    _p(prep.make_lm_features, inputs_key=prep.PROMPT_TOKENS,
       targets_key=SEM),
])
