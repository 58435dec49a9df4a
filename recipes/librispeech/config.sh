# Configuration of recipes/librispeech/run.sh (bash, sourced by the recipe).
#
# Edit here, or put overrides in another file and pass it with
# `run.sh --config my.sh` (sourced after this one). Every value below is what
# the recipe passes to the project's commands; nothing else decides.

# --- Corpus -------------------------------------------------------------------
# Splits to download and tokenize (LibriSpeech's released archive names).
SPLITS="dev-clean test-clean train-clean-100"
# The public mirror of the released archives and their md5sum.txt (OpenSLR
# SLR12; mirrors: https://us.openslr.org/resources/12,
# https://openslr.trmal.net/resources/12).
LIBRISPEECH_URL="https://www.openslr.org/resources/12"
# A local copy instead of a download: either a folder of the released
# <split>.tar.gz archives (an md5sum.txt beside them is checked), or an
# extracted LibriSpeech tree (<split>/<speaker>/<chapter>/...). Empty:
# download into $WORK_DIR/download.
LOCAL_COPY=""
# Splits whose audio the codebook is fitted on (stage 1 reads an extracted
# tree: stage 0 extracts these archives) and the split of held-out prompts
# for generation (stage 8, extracted too).
KMEANS_SPLITS="train-clean-100"
PROMPT_SPLIT="test-clean"

# --- Tokenizers ---------------------------------------------------------------
# Semantic: logmel (weight-free), w2v_bert, hubert, wav2vec2, saved_model;
# options as KEY=VALUE (e.g. SEMANTIC_OPTIONS=(model=facebook/w2v-bert-2.0 layer=7)).
SEMANTIC_BACKEND="logmel"
SEMANTIC_OPTIONS=()
KMEANS_K=1024                 # the paper's K (constants.SEMANTIC_CODEBOOK_SIZE)
KMEANS_FILE_FRACTION=0.2      # share of the KMEANS_SPLITS files sampled
KMEANS_FRAMES_PER_FILE=100
# Acoustic (the contract's 50 Hz): lyra (Google's released SoundStream), dac,
# saved_model. (encodec, 75 Hz, is library-only: the job does not offer it.)
# Lyra 24 levels packed by 2 = 12 levels x 256 codes: the paper's Q = 12 within
# the speech gins' vocabulary (13440 ids: 2 + K + 12 x N with N <= 1024).
ACOUSTIC_BACKEND="lyra"
ACOUSTIC_OPTIONS=(levels=24 pack=2)
LYRA_DIR=""                   # Lyra's .tflite files; empty: download (sha256-checked)
NUM_SHARDS=64                 # token shards per split
GROUP_SECONDS=""              # group a chapter's utterances up to S s (stage-1 crops are 30 s); empty: one record per file

# --- Where it runs ------------------------------------------------------------
# local: the Beam jobs on the DirectRunner of this machine, training with the
#        JAX of this machine (CPU or GPUs).
# scale: stages 1-4 on Dataflow (DATAFLOW_ARGS; DATA_ROOT must then be gs://),
#        training on the TPU VM or GPU host where you run stages 5-7 (run
#        `run.sh --stage 5 --stop_stage 7` on every host of a TPU slice).
RUN_AT="local"
WORK_DIR="${WORK_DIR:-$PWD/exp/librispeech}"   # local: markers, logs, downloads
DATA_ROOT=""                  # codebook, tokens, report, cache, models; empty: $WORK_DIR/data
BEAM_LOCAL_ARGS=(--direct_running_mode=multi_processing --direct_num_workers=0)
DATAFLOW_ARGS=(--runner=DataflowRunner --project=MY_PROJECT --region=us-central1
               --temp_location=gs://MY_BUCKET/tmp --setup_file=./setup.py
               --max_num_workers=100)
PYTHON="${PYTHON:-python3}"

# --- SeqIO cache (stage 4) ----------------------------------------------------
CACHE_TASKS="audiolm_semantic_v001,audiolm_coarse_v001,audiolm_fine_v001"
CACHE_MIN_SHARDS=64
USE_CACHED_TASKS=true         # stages 5-7 read stage 4's cache (of the tasks in CACHE_TASKS)

# --- Training (stages 5-7) ----------------------------------------------------
# The project's gins: train/<stage>.gin + a partitioning gin; MODEL_GINS adds
# e.g. models/tiny.gin (smoke test). Empty steps / batch: the gins' paper values
# (1M steps, batch 256).
PARTITIONING_GIN="partitioning/gpu.gin"   # TPU v4-32 slice: partitioning/tpu_v4_32.gin
MODEL_GINS=()
TRAIN_STEPS=""
BATCH_SIZE=""
# Microbatches per stage (BUILD.md section 5: 1 H200 -> semantic 4, fine 16,
# coarse 16; TPU v4-32 -> 1 / 4 / 4). Empty: the gins' default (none).
MICROBATCHES_SEMANTIC=""
MICROBATCHES_COARSE=""
MICROBATCHES_FINE=""
TRAIN_EXTRA_ARGS=()           # more flags for t5x.train, e.g. --gin.RANDOM_SEED=0

# --- Generation and evaluation (stages 8-9) -----------------------------------
PROMPT_SECONDS=3
CONTINUATION_SECONDS=10
NUM_PROMPTS_SAMPLES=1         # samples per prompt
# Generation runs the T5X stages in this process (DirectRunner): the host that
# trained them. Its flags: python -m pipelines.generate --help.
GENERATE_BEAM_ARGS=(--runner=DirectRunner)
GENERATE_EXTRA_ARGS=()        # e.g. (--batch_size=16 --coarse_temperature=0.8)
# Token quality: codec reconstruction (ViSQOL, PESQ, STOI) of the prompt split
# with the tokenization's codec; add --espeak_set (local output only) or
# --item_file/--item_audio_dir for ABX of the semantic tokens.
EVALUATE_TOKENS_ARGS=(--max_files=20 --max_seconds=10)
EVALUATE_CONTINUATIONS_ARGS=() # e.g. (--asr=transformers --asr_model=DIR)
# LM pair scores (sWUGGY / sBLIMP style) of the stage-1 model: a ZeroSpeech
# 2021 root (lexical/<split>/gold.csv ...); empty: the espeak-ng smoke set,
# synthesized into $DATA_ROOT/eval/lm_smoke_set (labelled as a smoke set).
LM_SCORES_DATA=""
LM_SCORES_ARGS=()             # e.g. (--split=test --tasks=lexical --batch_size=64)
# Detector: real prompt-split audio vs the generated continuations; with
# DETECTOR_CODEC_NEGATIVES=true also vs codec resyntheses of the real audio
# (the tokenization's codec), reported apart.
DETECTOR_CODEC_NEGATIVES=true
DETECTOR_ARGS=()              # e.g. (--epochs=10 --batch_size=32)
