#!/usr/bin/env bash
# AudioLM on LibriSpeech, from the archives to trained stages and scores.
#
#   recipes/librispeech/run.sh [--stage N] [--stop_stage M] [--config FILE]
#
# Stages (each prints what it does and where its outputs are, leaves
# $WORK_DIR/done/stage<N>.<name>.done, and is skipped on a rerun while that
# marker exists; delete the marker to redo a stage):
#   0 data        download the released archives + md5sum.txt (or use LOCAL_COPY), verify,
#                 extract the codebook and prompt splits
#   1 codebook    fit the semantic k-means codebook     (pipelines.fit_kmeans)
#   2 tokenize    tokenize, reading the archives directly (pipelines.tokenize_corpus)
#   3 report      data report: plots and report.md       (pipelines.report)
#   4 cache       cache the SeqIO tasks                   (seqio.scripts.cache_tasks_main)
#   5 semantic    train stage 1                           (t5x.train, train/semantic.gin)
#   6 coarse      train stage 2                           (t5x.train, train/coarse.gin)
#   7 fine        train stage 3                           (t5x.train, train/fine.gin)
#   8 generate    continue held-out prompts               (pipelines.generate)
#   9 evaluate    token quality, continuations, LM pair scores, detector
#                 (pipelines.evaluate_tokens, .evaluate_continuations,
#                 .score_lm_pairs, .train_detector)
#
# Settings: recipes/librispeech/config.sh (corpus, tokenizers, sizes, local
# or Dataflow / TPU); --config FILE is sourced after it to override. The
# recipe only calls the project's commands (and curl, md5sum, tar in stage 0).
set -euo pipefail

RECIPE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$RECIPE_DIR/../.." && pwd)"

# The tokenization command, named in this one place.
TOKENIZE_MODULE="audiolm_t5x.pipelines.tokenize_corpus"
GENERATE_MODULE="audiolm_t5x.pipelines.generate"
EVALUATE_TOKENS_MODULE="audiolm_t5x.pipelines.evaluate_tokens"
EVALUATE_CONTINUATIONS_MODULE="audiolm_t5x.pipelines.evaluate_continuations"
LM_SCORES_MODULE="audiolm_t5x.pipelines.score_lm_pairs"
DETECTOR_MODULE="audiolm_t5x.pipelines.train_detector"

# shellcheck source=../common.sh
source "$RECIPE_DIR/../common.sh"
parse_recipe_args "$@"

DATA_ROOT="${DATA_ROOT:-$WORK_DIR/data}"
CODEBOOK="$DATA_ROOT/kmeans_${SEMANTIC_BACKEND}_${KMEANS_K}.npz"
TOKENS="$DATA_ROOT/tokens"
REPORT="$DATA_ROOT/report"
CACHE="$DATA_ROOT/seqio_cache"
MODELS="$DATA_ROOT/models"
GENERATED="$DATA_ROOT/generated"
EVAL="$DATA_ROOT/eval"
CORPUS_ENV="$WORK_DIR/corpus.env"   # written by stage 0: where the corpus is
export PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"

case "$RUN_AT" in
  local) BEAM_ARGS=(--runner=DirectRunner "${BEAM_LOCAL_ARGS[@]}") ;;
  scale)
    [[ "$DATA_ROOT" == gs://* ]] \
      || die "RUN_AT=scale runs the Beam jobs on Dataflow: set DATA_ROOT to a gs:// folder"
    BEAM_ARGS=("${DATAFLOW_ARGS[@]}") ;;
  *) die "RUN_AT must be local or scale (got '$RUN_AT')" ;;
esac
init_stages
[[ "$DATA_ROOT" == gs://* ]] || mkdir -p "$DATA_ROOT"

# shellcheck disable=SC2206
SPLIT_LIST=($SPLITS)

load_corpus() {
  [[ -f "$CORPUS_ENV" ]] || die "stage $1 needs stage 0's $CORPUS_ENV (run --stage 0)"
  # shellcheck disable=SC1090
  source "$CORPUS_ENV"
}

# --- 0. data ---------------------------------------------------------------------
verify_archives() {  # DIR: md5sum -c of the wanted archives against DIR/md5sum.txt
  local dir=$1 s lines=""
  if [[ ! -f "$dir/md5sum.txt" ]]; then
    echo "   warning: no md5sum.txt in $dir; archives not verified"
    return 0
  fi
  for s in "${SPLIT_LIST[@]}"; do
    local line
    line="$(grep -E "[[:space:]]\*?$s\.tar\.gz\$" "$dir/md5sum.txt" || true)"
    [[ -n "$line" ]] || die "$dir/md5sum.txt has no line for $s.tar.gz"
    lines+="$line"$'\n'
  done
  (cd "$dir" && printf '%s' "$lines" | md5sum -c -) 2>&1 | tee -a "$LOG"
}

if begin_stage 0 data "LibriSpeech archives (${SPLITS}) from ${LOCAL_COPY:-$LIBRISPEECH_URL}, md5-checked; extract ${KMEANS_SPLITS} ${PROMPT_SPLIT}" \
    "$CORPUS_ENV, $WORK_DIR/download, $WORK_DIR/extracted"; then
  archive_dir=""
  corpus_tree=""
  if [[ -n "$LOCAL_COPY" ]]; then
    [[ -d "$LOCAL_COPY" ]] || die "LOCAL_COPY=$LOCAL_COPY is not a folder"
    if compgen -G "$LOCAL_COPY/*.tar.gz" >/dev/null; then
      archive_dir="$(cd "$LOCAL_COPY" && pwd)"
      echo "   local copy of the archives: $archive_dir"
    elif [[ -d "$LOCAL_COPY/${SPLIT_LIST[0]}" ]]; then
      corpus_tree="$(cd "$LOCAL_COPY" && pwd)"
      echo "   local extracted tree: $corpus_tree (stage 2 reads the tree, not archives)"
    else
      die "LOCAL_COPY=$LOCAL_COPY holds neither <split>.tar.gz archives nor a ${SPLIT_LIST[0]}/ folder"
    fi
  else
    archive_dir="$WORK_DIR/download"
    mkdir -p "$archive_dir"
    run curl -fsSL --retry 3 -o "$archive_dir/md5sum.txt" "$LIBRISPEECH_URL/md5sum.txt"
    for s in "${SPLIT_LIST[@]}"; do
      run curl -fL --retry 3 -C - -o "$archive_dir/$s.tar.gz" "$LIBRISPEECH_URL/$s.tar.gz"
    done
  fi
  if [[ -n "$archive_dir" ]]; then
    for s in "${SPLIT_LIST[@]}"; do
      [[ -f "$archive_dir/$s.tar.gz" ]] || die "$archive_dir has no $s.tar.gz (SPLITS=$SPLITS)"
    done
    verify_archives "$archive_dir"
    extracted="$WORK_DIR/extracted"
    mkdir -p "$extracted"
    for s in $KMEANS_SPLITS $PROMPT_SPLIT; do
      [[ -f "$archive_dir/$s.tar.gz" ]] || die "no $s.tar.gz in $archive_dir for KMEANS_SPLITS / PROMPT_SPLIT"
      if [[ ! -d "$extracted/LibriSpeech/$s" ]]; then
        run tar -xzf "$archive_dir/$s.tar.gz" -C "$extracted"
      fi
    done
    corpus_tree="$extracted/LibriSpeech"
    if [[ "$RUN_AT" == scale ]]; then  # Dataflow workers read from Cloud Storage
      run gcloud storage cp -r "$archive_dir" "$DATA_ROOT/archives"
      run gcloud storage cp -r "$corpus_tree" "$DATA_ROOT/LibriSpeech"
      archive_dir="$DATA_ROOT/archives"
      corpus_tree="$DATA_ROOT/LibriSpeech"
    fi
  fi
  printf 'ARCHIVE_DIR=%q\nCORPUS_TREE=%q\n' "$archive_dir" "$corpus_tree" > "$CORPUS_ENV"
  end_stage "archives: ${archive_dir:-none}; tree: $corpus_tree"
fi

# --- 1. codebook -----------------------------------------------------------------
SEMANTIC_FLAGS=(--semantic_backend="$SEMANTIC_BACKEND")
for o in "${SEMANTIC_OPTIONS[@]}"; do SEMANTIC_FLAGS+=(--semantic_option="$o"); done
ACOUSTIC_FLAGS=(--acoustic_backend="$ACOUSTIC_BACKEND")
for o in "${ACOUSTIC_OPTIONS[@]}"; do ACOUSTIC_FLAGS+=(--acoustic_option="$o"); done
if [[ "$ACOUSTIC_BACKEND" == lyra ]]; then
  if [[ -n "$LYRA_DIR" ]]; then ACOUSTIC_FLAGS+=(--lyra_dir="$LYRA_DIR")
  else ACOUSTIC_FLAGS+=(--lyra_download); fi
fi

if begin_stage 1 codebook "fit the semantic codebook (K=$KMEANS_K, $SEMANTIC_BACKEND) on $KMEANS_SPLITS" \
    "$CODEBOOK (+ .json provenance)"; then
  load_corpus 1
  run "$PYTHON" -m audiolm_t5x.pipelines.fit_kmeans --input_dir="$CORPUS_TREE" \
    --splits="$(commas $KMEANS_SPLITS)" --output="$CODEBOOK" --k="$KMEANS_K" \
    --file_fraction="$KMEANS_FILE_FRACTION" \
    --frames_per_file="$KMEANS_FRAMES_PER_FILE" --seed=0 \
    "${SEMANTIC_FLAGS[@]}" "${BEAM_ARGS[@]}"
  end_stage "$CODEBOOK"
fi

# --- 2. tokenize -----------------------------------------------------------------
if begin_stage 2 tokenize "tokenize $SPLITS ($SEMANTIC_BACKEND + k-means, $ACOUSTIC_BACKEND ${ACOUSTIC_OPTIONS[*]})" \
    "$TOKENS (dataset_info.json, <split>/ shards, dead_letter.jsonl)"; then
  load_corpus 2
  if [[ -n "$ARCHIVE_DIR" ]]; then SOURCE_FLAGS=(--input_dir="$ARCHIVE_DIR" --archives)
  else SOURCE_FLAGS=(--input_dir="$CORPUS_TREE"); fi
  GROUP_FLAGS=()
  [[ -z "$GROUP_SECONDS" ]] || GROUP_FLAGS=(--group_seconds="$GROUP_SECONDS")
  run "$PYTHON" -m "$TOKENIZE_MODULE" "${SOURCE_FLAGS[@]}" \
    --splits="$(commas "${SPLIT_LIST[@]}")" --output_dir="$TOKENS" \
    --kmeans="$CODEBOOK" --num_shards="$NUM_SHARDS" "${GROUP_FLAGS[@]}" \
    "${SEMANTIC_FLAGS[@]}" "${ACOUSTIC_FLAGS[@]}" "${BEAM_ARGS[@]}"
  end_stage "$TOKENS"
fi

# --- 3. report -------------------------------------------------------------------
if begin_stage 3 report "data report of the tokens" \
    "$REPORT (report.md, stats.json, *.png)"; then
  run "$PYTHON" -m audiolm_t5x.pipelines.report --data_dir="$TOKENS" \
    --output_dir="$REPORT" "${BEAM_ARGS[@]}"
  end_stage "$REPORT/report.md"
fi

# --- 4. cache --------------------------------------------------------------------
if begin_stage 4 cache "cache the SeqIO tasks $CACHE_TASKS (seqio's cache job)" \
    "$CACHE/<task>/"; then
  AUDIOLM_DATA_DIR="$TOKENS" run "$PYTHON" -m seqio.scripts.cache_tasks_main \
    --module_import=audiolm_t5x.tasks.audiolm --tasks="$CACHE_TASKS" \
    --output_cache_dir="$CACHE" --min_shards="$CACHE_MIN_SHARDS" \
    --pipeline_options="$(commas "${BEAM_ARGS[@]}")"
  end_stage "$CACHE"
fi

# --- 5-7. training ---------------------------------------------------------------
# With USE_CACHED_TASKS=true a stage reads stage 4's cache when its task (the
# MIXTURE_OR_TASK_NAME of train/<stage>.gin) is one of CACHE_TASKS, else the
# token records.
stage_task() {  # NAME: the SeqIO task that train/NAME.gin trains on
  "$PYTHON" -c 'import sys; from audiolm_t5x import t5x_configs as c
print(c.macro_value([c.gin_path(f"train/{sys.argv[1]}.gin")], "MIXTURE_OR_TASK_NAME"))' "$1"
}

train_stage() {  # NAME MICROBATCHES
  T5X_CACHE_ARGS=()
  if [[ "$USE_CACHED_TASKS" == true ]]; then
    local task
    task="$(stage_task "$1")"
    if [[ ",$CACHE_TASKS," == *",$task,"* ]]; then
      T5X_CACHE_ARGS=(--gin.USE_CACHED_TASKS=True --seqio_additional_cache_dirs="$CACHE")
      echo "   reads stage 4's cache of $task"
    else
      echo "   $task is not in CACHE_TASKS: reads the token records"
    fi
  fi
  AUDIOLM_DATA_DIR="$TOKENS" t5x_train "$1" "$MODELS/$1" "$2"
  end_stage "$MODELS/$1/checkpoint_$(checkpoint_step)"
}

if begin_stage 5 semantic "train stage 1, semantic modelling (t5x.train, train/semantic.gin ${MODEL_GINS[*]})" \
    "$MODELS/semantic"; then
  train_stage semantic "$MICROBATCHES_SEMANTIC"
fi
if begin_stage 6 coarse "train stage 2, coarse acoustic modelling (t5x.train, train/coarse.gin ${MODEL_GINS[*]})" \
    "$MODELS/coarse"; then
  train_stage coarse "$MICROBATCHES_COARSE"
fi
if begin_stage 7 fine "train stage 3, fine acoustic modelling (t5x.train, train/fine.gin ${MODEL_GINS[*]})" \
    "$MODELS/fine"; then
  train_stage fine "$MICROBATCHES_FINE"
fi

# --- 8. generate -----------------------------------------------------------------
if begin_stage 8 generate "continue ${PROMPT_SECONDS} s prompts of $PROMPT_SPLIT to ${CONTINUATION_SECONDS} s through the three stages" \
    "$GENERATED (WAV, tokens, settings per prompt)"; then
  load_corpus 8
  step="$(checkpoint_step)"
  GIN_FLAGS=()
  for g in "${MODEL_GINS[@]}"; do GIN_FLAGS+=(--gin_file="$g"); done
  AUDIOLM_DATA_DIR="$TOKENS" run "$PYTHON" -m "$GENERATE_MODULE" \
    --prompts="$CORPUS_TREE/$PROMPT_SPLIT" --output_dir="$GENERATED" \
    --mode=continuation \
    --semantic_checkpoint="$MODELS/semantic/checkpoint_$step" \
    --coarse_checkpoint="$MODELS/coarse/checkpoint_$step" \
    --fine_checkpoint="$MODELS/fine/checkpoint_$step" "${GIN_FLAGS[@]}" \
    --prompt_seconds="$PROMPT_SECONDS" --seconds="$CONTINUATION_SECONDS" \
    --num_samples="$NUM_PROMPTS_SAMPLES" --kmeans="$CODEBOOK" \
    "${SEMANTIC_FLAGS[@]}" "${ACOUSTIC_FLAGS[@]}" "${GENERATE_BEAM_ARGS[@]}" \
    "${GENERATE_EXTRA_ARGS[@]}"
  end_stage "$GENERATED"
fi

# --- 9. evaluate -----------------------------------------------------------------
if begin_stage 9 evaluate "token quality, continuations, LM pair scores, synthetic-speech detector" \
    "$EVAL/{tokens,continuations,lm_scores,detector}"; then
  load_corpus 9
  # The codec of the tokenization, as evaluate_tokens' --codec NAME:K=V,...
  codec="$ACOUSTIC_BACKEND"
  ((${#ACOUSTIC_OPTIONS[@]} == 0)) || codec+=":$(IFS=,; echo "${ACOUSTIC_OPTIONS[*]}")"
  LYRA_FLAGS=()
  [[ "$ACOUSTIC_BACKEND" != lyra || -z "$LYRA_DIR" ]] || LYRA_FLAGS=(--lyra_dir="$LYRA_DIR")
  run "$PYTHON" -m "$EVALUATE_TOKENS_MODULE" \
    --audio_dir="$CORPUS_TREE/$PROMPT_SPLIT" --codec="$codec" \
    --output_dir="$EVAL/tokens" "${LYRA_FLAGS[@]}" "${BEAM_ARGS[@]}" \
    "${EVALUATE_TOKENS_ARGS[@]}"
  run "$PYTHON" -m "$EVALUATE_CONTINUATIONS_MODULE" --generated="$GENERATED" \
    --output_dir="$EVAL/continuations" "${BEAM_ARGS[@]}" \
    "${EVALUATE_CONTINUATIONS_ARGS[@]}"
  # score_lm_pairs' --gin_file replaces its default gins: name them too.
  LM_GIN_FLAGS=(--gin_file=models/audiolm_decoder.gin --gin_file=stages/semantic.gin)
  for g in "${MODEL_GINS[@]}"; do LM_GIN_FLAGS+=(--gin_file="$g"); done
  if [[ -n "$LM_SCORES_DATA" ]]; then LM_DATA_FLAGS=(--data_dir="$LM_SCORES_DATA")
  else LM_DATA_FLAGS=(--data_dir="$EVAL/lm_smoke_set" --make_smoke_set); fi
  run "$PYTHON" -m "$LM_SCORES_MODULE" "${LM_DATA_FLAGS[@]}" \
    --checkpoint="$MODELS/semantic/checkpoint_$(checkpoint_step)" \
    --kmeans="$CODEBOOK" "${SEMANTIC_FLAGS[@]}" "${LM_GIN_FLAGS[@]}" \
    --output_dir="$EVAL/lm_scores" "${LM_SCORES_ARGS[@]}"
  CODEC_NEG_FLAGS=()
  if [[ "$DETECTOR_CODEC_NEGATIVES" == true ]]; then
    CODEC_NEG_FLAGS=(--codec_backend="$ACOUSTIC_BACKEND")
    for o in "${ACOUSTIC_OPTIONS[@]}"; do CODEC_NEG_FLAGS+=(--acoustic_option="$o"); done
    [[ "$ACOUSTIC_BACKEND" != lyra || -z "$LYRA_DIR" ]] \
      || CODEC_NEG_FLAGS+=(--acoustic_option=model_dir="$LYRA_DIR")
  fi
  run "$PYTHON" -m "$DETECTOR_MODULE" --real="$CORPUS_TREE/$PROMPT_SPLIT" \
    --generated="$GENERATED" --output_dir="$EVAL/detector" \
    "${CODEC_NEG_FLAGS[@]}" "${DETECTOR_ARGS[@]}"
  end_stage "$EVAL/tokens $EVAL/continuations $EVAL/lm_scores $EVAL/detector"
fi

echo
echo "run.sh: stages $stage-$stop_stage finished; markers in $WORK_DIR/done, logs in $WORK_DIR/logs"
