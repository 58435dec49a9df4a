# Stage bookkeeping shared by the recipes (sourced, not run).
#
# A recipe sets RECIPE_DIR, calls `parse_recipe_args "$@"` (--stage,
# --stop_stage, --config; sources the config files), sets WORK_DIR (from its
# config), calls `init_stages`, then wraps each stage in
#
#   if begin_stage N NAME "what it does" "where its outputs are"; then
#     run some_command ...
#     end_stage "outputs"
#   fi
#
# begin_stage prints the stage, and is false when N is outside
# --stage..--stop_stage or when its marker $WORK_DIR/done/stage<N>.<NAME>.done
# exists (a done stage is skipped). end_stage writes the marker.

die() {  # a user error: one line, exit code 2
  echo "run.sh: error: $*" >&2
  exit 2
}

recipe_usage() {  # prints the recipe's header comment
  sed -n '2,/^set -euo pipefail/p' "$1" | sed '$d' | sed 's/^# \{0,1\}//'
}

parse_recipe_args() {  # "$@" of the recipe
  stage=0
  stop_stage=${MAX_STAGE:-9}
  local configs=("$RECIPE_DIR/config.sh") c
  while (($#)); do
    case "$1" in
      --stage) stage="${2:?--stage needs a number}"; shift 2 ;;
      --stage=*) stage="${1#*=}"; shift ;;
      --stop_stage) stop_stage="${2:?--stop_stage needs a number}"; shift 2 ;;
      --stop_stage=*) stop_stage="${1#*=}"; shift ;;
      --config) configs+=("${2:?--config needs a file}"); shift 2 ;;
      --config=*) configs+=("${1#*=}"); shift ;;
      -h|--help) recipe_usage "$RECIPE_DIR/run.sh"; exit 0 ;;
      *) die "unknown argument '$1' (see --help)" ;;
    esac
  done
  [[ "$stage" =~ ^[0-9]$ && "$stop_stage" =~ ^[0-9]$ ]] \
    || die "--stage and --stop_stage must be 0-${MAX_STAGE:-9} (got '$stage', '$stop_stage')"
  ((stop_stage <= ${MAX_STAGE:-9})) || die "--stop_stage must be at most ${MAX_STAGE:-9}"
  ((stage <= stop_stage)) || die "--stage $stage is after --stop_stage $stop_stage"
  for c in "${configs[@]}"; do
    [[ -f "$c" ]] || die "config file '$c' not found"
    # shellcheck disable=SC1090
    source "$c"
  done
}

init_stages() {
  mkdir -p "$WORK_DIR/done" "$WORK_DIR/logs"
  current=""
  marker=""
  started=0
  LOG=/dev/null
}

commas() { local IFS=,; echo "$*"; }

begin_stage() {  # N NAME WHAT OUTPUTS
  local n=$1 name=$2
  ((n >= stage && n <= stop_stage)) || return 1
  current="$n $name"
  marker="$WORK_DIR/done/stage$n.$name.done"
  echo
  echo "== stage $n ($name): $3"
  echo "   outputs: $4"
  if [[ -f "$marker" ]]; then
    echo "   done before ($marker, $(head -1 "$marker")): skipped"
    return 1
  fi
  LOG="$WORK_DIR/logs/stage$n.$name.log"
  : > "$LOG"
  echo "   log: $LOG"
  started=$SECONDS
  return 0
}

end_stage() {  # OUTPUTS: writes the stage's marker
  { date -u +%Y-%m-%dT%H:%M:%SZ; echo "$*"; } > "$marker"
  echo "   stage $current done in $((SECONDS - started)) s: $*"
}

run() {  # prints and runs a command; its output also goes to the stage's log
  echo "   \$ $*" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG"
}

# t5x_train NAME MODEL_DIR MICROBATCHES: `t5x.train` with the project's gin
# train/NAME.gin, MODEL_GINS, PARTITIONING_GIN, TRAIN_STEPS, BATCH_SIZE and
# TRAIN_EXTRA_ARGS of the config; the data directory comes from the caller's
# environment.
t5x_train() {
  local name=$1 model_dir=$2 micro=${3:-} gin_dir g
  "$PYTHON" -c 'import t5x' 2>/dev/null \
    || die "stage $current needs T5X (not importable by $PYTHON): see BUILD.md, 'Install T5X'"
  gin_dir="$("$PYTHON" -m audiolm_t5x.t5x_configs)"
  local args=(--gin_search_paths="$gin_dir" --gin_file="train/$name.gin")
  for g in "${MODEL_GINS[@]}"; do args+=(--gin_file="$g"); done
  args+=(--gin_file="$PARTITIONING_GIN" --gin.MODEL_DIR="'$model_dir'")
  [[ -z "$TRAIN_STEPS" ]] || args+=(--gin.TRAIN_STEPS="$TRAIN_STEPS")
  [[ -z "$BATCH_SIZE" ]] || args+=(--gin.BATCH_SIZE="$BATCH_SIZE")
  [[ -z "$micro" ]] || args+=(--gin.trainer.Trainer.num_microbatches="$micro")
  run "$PYTHON" -m t5x.train "${args[@]}" "${T5X_CACHE_ARGS[@]}" "${TRAIN_EXTRA_ARGS[@]}"
}

checkpoint_step() {  # the step of the last checkpoint training writes
  if [[ -n "$TRAIN_STEPS" ]]; then echo "$TRAIN_STEPS"
  else "$PYTHON" -c 'from audiolm_t5x import constants; print(constants.TRAIN_STEPS)'; fi
}
