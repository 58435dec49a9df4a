# Configuration of recipes/piano/run.sh (bash, sourced by the recipe).
# Override with `run.sh --config my.sh` (sourced after this file).

# --- Corpus: generated MIDI RENDERED with FluidSynth (not recorded) -------------
PIANO_SEED=0
TRAIN_PIECES=40
DEV_PIECES=8
PIECE_SECONDS=30
PIECE_KINDS="scale,arpeggio,chords,random_walk"
SOUNDFONT="/usr/share/sounds/sf2/FluidR3_GM.sf2"   # Debian: fluid-soundfont-gm

# --- Tokenizers -----------------------------------------------------------------
SEMANTIC_BACKEND="logmel"
SEMANTIC_OPTIONS=()
KMEANS_K=1024
KMEANS_FILE_FRACTION=1.0
KMEANS_FRAMES_PER_FILE=200
# The paper's piano codec has 3 levels x 2^14 codes. Lyra's quantizer has
# 4-bit levels and `pack` merges p of them into one token of 16^p codes, so 3
# levels come as 16^p codes: p=3 (levels=9, pack=3) gives 3 x 4096 = 3 x 2^12,
# the closest below 2^14 (p=4 gives 3 x 65536 = 3 x 2^16, whose 2 + K + 3 x
# 65536 LM ids overflow the piano gins' vocabulary of 50304).
ACOUSTIC_BACKEND="lyra"
ACOUSTIC_OPTIONS=(levels=9 pack=3)
LYRA_DIR=""                  # empty: download (sha256-checked)
NUM_SHARDS=4

# --- Where it runs --------------------------------------------------------------
WORK_DIR="${WORK_DIR:-$PWD/exp/piano}"
BEAM_ARGS=(--runner=DirectRunner)
PYTHON="${PYTHON:-python3}"

# --- Training: the two piano stages, tiny by default (a demonstration corpus) ---
# Paper size: MODEL_GINS=() and TRAIN_STEPS="" (1M steps, batch 256).
PARTITIONING_GIN="partitioning/gpu.gin"
MODEL_GINS=(models/tiny.gin)
TRAIN_STEPS=200
BATCH_SIZE=8
# backend=None: JAX's default devices (GPUs if any, else the CPU of a laptop).
TRAIN_EXTRA_ARGS=(--gin.partitioning.PjitPartitioner.backend=None)

# --- Generation (stage 6): continuations of the rendered dev pieces ---------------
# Two stages, no fine stage: pipelines.generate takes no --fine_checkpoint for
# the piano gins (their stage 2 predicts all 3 levels of the layout).
PROMPT_SECONDS=3             # a multiple of 0.04 s, at most PIECE_SECONDS
CONTINUATION_SECONDS=10      # each output's length, prompt included
NUM_SAMPLES=1                # samples per piece
GENERATE_EXTRA_ARGS=()       # e.g. (--batch_size=4 --coarse_temperature=0.9)
