"""Registers the AudioLM SeqIO tasks and mixtures (registration only).

``import audiolm_t5x.tasks.audiolm`` (or gin's ``import``) registers them;
nothing reads data until a dataset is built. Point them at the tokenization
job's output with ``AUDIOLM_DATA_DIR`` / ``AUDIOLM_PIANO_DATA_DIR`` or gin
(``audiolm_tasks.speech_corpus.data_dir``); see
:mod:`audiolm_t5x.tasks.stages` for every option.

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


def _register(name: str) -> None:
  corpus, stage = TASK_STAGES[name]
  vocab = seqio.PassThroughVocabulary(size=VOCAB_SIZES[name],
                                      eos_id=constants.EOS_ID)
  features = {"targets": seqio.Feature(vocab, add_eos=False)}
  if "inputs" in TASK_FEATURE_LENGTHS[name]:
    features["inputs"] = seqio.Feature(vocab, add_eos=False)
  seqio.TaskRegistry.add(
      name,
      source=stages.TokenRecordSource(corpus=corpus),
      preprocessors=[
          functools.partial(stages.precache_stage, corpus=corpus, stage=stage),
          seqio.CacheDatasetPlaceholder(),
          functools.partial(stages.postcache_stage, corpus=corpus, stage=stage),
      ],
      output_features=features,
  )


# ----------------------------------------------------------------- speech ----
# Stage 1: 30 s crops of deduplicated semantic tokens -> targets.
_register(SEMANTIC_TASK)
# Stage 2: 10 s crops; deduplicated semantic tokens -> coarse levels 1..Q'.
_register(COARSE_TASK)
# Stage 3: 3 s crops; coarse levels 1..Q' -> fine levels Q'+1..Q.
_register(FINE_TASK)
# Stages 2 and 3 at equal rates: one prefix LM for both acoustic stages (an
# experiment; the paper trains one model per stage).
seqio.MixtureRegistry.add(ACOUSTIC_MIXTURE, [COARSE_TASK, FINE_TASK],
                          default_rate=1.0)

# ------------------------------------------------------------------ piano ----
# Piano stage 1: 30 s crops of deduplicated semantic tokens -> targets.
_register(PIANO_SEMANTIC_TASK)
# Piano stage 2: 10 s crops; deduplicated semantic tokens -> all 3 levels.
_register(PIANO_ACOUSTIC_TASK)

# -------------------------------------------------------- sampling prompts ----
# Stage 1 sampling: a 10 s crop at a seeded random start (as the training
# crops), deduplicated as one sequence; its first 3 s -> inputs (the prompt),
# the rest -> targets (the real continuation).
_register(SEMANTIC_PROMPT_TASK)
# Piano stage 1 sampling: the same 3 s prompt / 10 s crop split.
_register(PIANO_SEMANTIC_PROMPT_TASK)
