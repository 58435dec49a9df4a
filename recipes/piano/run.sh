#!/usr/bin/env bash
# AudioLM piano, end to end on an offline corpus RENDERED from generated MIDI.
#
#   recipes/piano/run.sh [--stage N] [--stop_stage M] [--config FILE]
#
# Stages (each prints what it does and where its outputs are, leaves
# $WORK_DIR/done/stage<N>.<name>.done, and is skipped on a rerun while that
# marker exists):
#   0 corpus      render the piano corpus: generated MIDI -> FluidSynth -> 16 kHz FLAC
#                 (pipelines.make_piano_corpus; rendered, not recorded)
#   1 codebook    fit the semantic k-means codebook on train-rendered (pipelines.fit_kmeans)
#   2 tokenize    tokenize with a 3-level codec layout (pipelines.tokenize_corpus,
#                 Lyra levels=9 pack=3: 3 x 4096 codes; the paper's is 3 x 2^14)
#   3 report      data report (pipelines.report)
#   4 semantic    train piano stage 1 (t5x.train, train/piano_semantic.gin)
#   5 acoustic    train piano stage 2, all 3 levels (t5x.train, train/piano_acoustic.gin)
#   6 generate    continue the rendered dev pieces through the two stages and decode
#                 with Lyra at the piano layout (pipelines.generate, no fine stage)
#
# Settings: recipes/piano/config.sh; --config FILE is sourced after it.
set -euo pipefail

RECIPE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$RECIPE_DIR/../.." && pwd)"

# The tokenization command, named in this one place.
TOKENIZE_MODULE="audiolm_t5x.pipelines.tokenize_corpus"
GENERATE_MODULE="audiolm_t5x.pipelines.generate"

MAX_STAGE=6
# shellcheck source=../common.sh
source "$RECIPE_DIR/../common.sh"
parse_recipe_args "$@"

CORPUS="$WORK_DIR/piano_rendered"
CODEBOOK="$WORK_DIR/kmeans_${SEMANTIC_BACKEND}_${KMEANS_K}.npz"
TOKENS="$WORK_DIR/tokens"
REPORT="$WORK_DIR/report"
MODELS="$WORK_DIR/models"
GENERATED="$WORK_DIR/generated"
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
# The piano tasks read $AUDIOLM_PIANO_DATA_DIR; the piano train gins' comments
# name $AUDIOLM_DATA_DIR (being reconciled): set both.
export AUDIOLM_PIANO_DATA_DIR="$TOKENS" AUDIOLM_DATA_DIR="$TOKENS"
T5X_CACHE_ARGS=()
init_stages

SEMANTIC_FLAGS=(--semantic_backend="$SEMANTIC_BACKEND")
for o in "${SEMANTIC_OPTIONS[@]}"; do SEMANTIC_FLAGS+=(--semantic_option="$o"); done
ACOUSTIC_FLAGS=(--acoustic_backend="$ACOUSTIC_BACKEND")
for o in "${ACOUSTIC_OPTIONS[@]}"; do ACOUSTIC_FLAGS+=(--acoustic_option="$o"); done
if [[ "$ACOUSTIC_BACKEND" == lyra ]]; then
  if [[ -n "$LYRA_DIR" ]]; then ACOUSTIC_FLAGS+=(--lyra_dir="$LYRA_DIR")
  else ACOUSTIC_FLAGS+=(--lyra_download); fi
fi

if begin_stage 0 corpus "render $TRAIN_PIECES + $DEV_PIECES pieces of $PIECE_SECONDS s ($PIECE_KINDS) with FluidSynth: RENDERED, not recorded" \
    "$CORPUS (README.txt, manifest.jsonl, <split>/<kind>/<seed>/rendered_*.{flac,mid,json})"; then
  run "$PYTHON" -m audiolm_t5x.pipelines.make_piano_corpus --output_dir="$CORPUS" \
    --seed="$PIANO_SEED" --train_pieces="$TRAIN_PIECES" --dev_pieces="$DEV_PIECES" \
    --seconds="$PIECE_SECONDS" --kinds="$PIECE_KINDS" --soundfont="$SOUNDFONT"
  end_stage "$CORPUS"
fi

if begin_stage 1 codebook "fit the semantic codebook (K=$KMEANS_K, $SEMANTIC_BACKEND) on train-rendered" \
    "$CODEBOOK (+ .json provenance)"; then
  run "$PYTHON" -m audiolm_t5x.pipelines.fit_kmeans --corpus=librilight --input_dir="$CORPUS" \
    --splits=train-rendered --output="$CODEBOOK" --k="$KMEANS_K" \
    --file_fraction="$KMEANS_FILE_FRACTION" \
    --frames_per_file="$KMEANS_FRAMES_PER_FILE" --seed=0 \
    "${SEMANTIC_FLAGS[@]}" "${BEAM_ARGS[@]}"
  end_stage "$CODEBOOK"
fi

if begin_stage 2 tokenize "tokenize the rendered corpus ($SEMANTIC_BACKEND + k-means, $ACOUSTIC_BACKEND ${ACOUSTIC_OPTIONS[*]})" \
    "$TOKENS (dataset_info.json, <split>/ shards, dead_letter.jsonl)"; then
  run "$PYTHON" -m "$TOKENIZE_MODULE" --corpus=librilight --input_dir="$CORPUS" \
    --output_dir="$TOKENS" --kmeans="$CODEBOOK" --num_shards="$NUM_SHARDS" \
    "${SEMANTIC_FLAGS[@]}" "${ACOUSTIC_FLAGS[@]}" "${BEAM_ARGS[@]}"
  end_stage "$TOKENS"
fi

if begin_stage 3 report "data report of the piano tokens" "$REPORT (report.md, stats.json, *.png)"; then
  run "$PYTHON" -m audiolm_t5x.pipelines.report --data_dir="$TOKENS" \
    --output_dir="$REPORT" --max_duration_seconds="$((${PIECE_SECONDS%.*} + 2))" \
    "${BEAM_ARGS[@]}"
  end_stage "$REPORT/report.md"
fi

if begin_stage 4 semantic "train piano stage 1, semantic (t5x.train, train/piano_semantic.gin ${MODEL_GINS[*]})" \
    "$MODELS/piano_semantic"; then
  t5x_train piano_semantic "$MODELS/piano_semantic"
  end_stage "$MODELS/piano_semantic/checkpoint_$(checkpoint_step)"
fi

if begin_stage 5 acoustic "train piano stage 2, all 3 acoustic levels (t5x.train, train/piano_acoustic.gin ${MODEL_GINS[*]})" \
    "$MODELS/piano_acoustic"; then
  t5x_train piano_acoustic "$MODELS/piano_acoustic"
  end_stage "$MODELS/piano_acoustic/checkpoint_$(checkpoint_step)"
fi

if begin_stage 6 generate "continue ${PROMPT_SECONDS} s of the RENDERED dev pieces to ${CONTINUATION_SECONDS} s (two stages: semantic, then all 3 acoustic levels; Lyra ${ACOUSTIC_OPTIONS[*]} decodes)" \
    "$GENERATED (<rendered piece>/sample-<k>.{wav,npz,json}, generation.json)"; then
  step="$(checkpoint_step)"
  GIN_FLAGS=()
  for g in "${MODEL_GINS[@]}"; do GIN_FLAGS+=(--gin_file="$g"); done
  # The piano's gins name the piano tasks; stage 2 predicts every level of
  # the layout, so the command takes no --fine_checkpoint.
  run "$PYTHON" -m "$GENERATE_MODULE" --prompts="$CORPUS/dev-rendered" \
    --output_dir="$GENERATED" --mode=continuation \
    --semantic_checkpoint="$MODELS/piano_semantic/checkpoint_$step" \
    --semantic_gin=infer/piano_semantic.gin \
    --coarse_checkpoint="$MODELS/piano_acoustic/checkpoint_$step" \
    --coarse_gin=infer/piano_acoustic.gin "${GIN_FLAGS[@]}" \
    --prompt_seconds="$PROMPT_SECONDS" --seconds="$CONTINUATION_SECONDS" \
    --num_samples="$NUM_SAMPLES" --kmeans="$CODEBOOK" \
    "${SEMANTIC_FLAGS[@]}" "${ACOUSTIC_FLAGS[@]}" "${BEAM_ARGS[@]}" \
    "${GENERATE_EXTRA_ARGS[@]}"
  end_stage "$GENERATED (continuations of rendered pieces)"
fi

echo
echo "run.sh: stages $stage-$stop_stage finished; markers in $WORK_DIR/done, logs in $WORK_DIR/logs"
