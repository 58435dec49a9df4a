"""Paper facts and the constants that define the data, in one place.

Everything here comes from AudioLM (Borsos et al., 2022, arXiv 2209.03143) or
from the released codecs the project supports. Other modules import these
names; they never retype the numbers.
"""

# --- Audio and token rates --------------------------------------------------
SAMPLE_RATE = 16_000  # Hz; every tokenizer consumes 16 kHz mono float32.

# Semantic tokens: w2v-BERT frames at 25 Hz, one per 640 samples.
SEMANTIC_RATE_HZ = 25
SEMANTIC_FRAME_SAMPLES = SAMPLE_RATE // SEMANTIC_RATE_HZ  # 640

# Acoustic tokens: SoundStream frames at 50 Hz, strides (2, 4, 5, 8) = 320.
ACOUSTIC_RATE_HZ = 50
ACOUSTIC_FRAME_SAMPLES = SAMPLE_RATE // ACOUSTIC_RATE_HZ  # 320
SOUNDSTREAM_STRIDES = (2, 4, 5, 8)

# One semantic frame spans exactly this many acoustic frames.
ACOUSTIC_FRAMES_PER_SEMANTIC = SEMANTIC_FRAME_SAMPLES // ACOUSTIC_FRAME_SAMPLES

# --- Tokenizer vocabularies (the paper's) -----------------------------------
SEMANTIC_CODEBOOK_SIZE = 1024  # K of the k-means over w2v-BERT embeddings.
W2V_BERT_LAYER = 7  # layer of w2v-BERT XL's masked-prediction module.
W2V_BERT_DIM = 1024
ACOUSTIC_LEVELS = 12  # Q: residual VQ levels of SoundStream at 6 kbps.
ACOUSTIC_CODEBOOK_SIZE = 1024  # N: codes per level.
COARSE_LEVELS = 4  # Q': levels 1..Q' are "coarse", the rest "fine".

# --- The three stages --------------------------------------------------------
SEMANTIC_CROP_SECONDS = 30.0  # stage 1
COARSE_CROP_SECONDS = 10.0  # stage 2
FINE_CROP_SECONDS = 3.0  # stage 3
SEMANTIC_TEMPERATURE = 0.6
COARSE_TEMPERATURE = 0.8
FINE_TEMPERATURE = 0.6
PROMPT_SECONDS = 3.0  # generation: a 3 s prompt ...
CONTINUATION_SECONDS = 10.0  # ... continued to 10 s.

# --- Model and training (each stage) ----------------------------------------
NUM_LAYERS = 12
NUM_HEADS = 16
D_MODEL = 1024
D_FF = 4096
HEAD_DIM = D_MODEL // NUM_HEADS  # 64
DROPOUT_RATE = 0.1
BATCH_SIZE = 256
TRAIN_STEPS = 1_000_000
TPU_V4_CHIPS = 16

# --- Piano variant -----------------------------------------------------------
PIANO_ACOUSTIC_LEVELS = 3
PIANO_ACOUSTIC_CODEBOOK_SIZE = 2**14

# --- LM vocabulary (ids that SeqIO and T5X see) ------------------------------
PAD_ID = 0  # SeqIO masks id 0 out of the loss.
EOS_ID = 1
NUM_SPECIAL_IDS = 2
VOCAB_PAD_MULTIPLE = 128  # embedding tables padded for TPU/GPU matmul tiles.

# --- Lyra v2 SoundStream (Google's released codec) ---------------------------
LYRA_MAX_LEVELS = 46  # residual VQ levels in quantizer.tflite
LYRA_CODEBOOK_BITS = 4  # 16 codes per level
LYRA_DEFAULT_LEVELS = 30  # 6 kbps; Lyra's 3.2 / 6 / 9.2 kbps use 16 / 30 / 46
# The tokenization job's default Lyra layout: 24 levels packed in pairs, i.e.
# 12 tokens of 16^2 = 256 codes per frame: the paper's Q = ACOUSTIC_LEVELS, so
# the gin files' feature lengths fit (30 levels would give fine targets of
# 3 s x 50 Hz x 26 = 3900 ids against stages/fine.gin's 1201).
LYRA_JOB_LEVELS = 24
LYRA_JOB_PACK = 2
LYRA_FEATURE_DIM = 64
LYRA_FILES = {  # file name -> sha256 of the released files (lyra@47698dad)
    "soundstream_encoder.tflite":
        "237da0b16226fb0a68d49551c81bebf614e42142af72764448359f68581e88f1",
    "quantizer.tflite":
        "841ee05989687d32d1f616a8ad1419fc7eda37599d3c05c7cf5a0d60ccf8ac5c",
    "lyragan.tflite":
        "50e7839cda4f30599a3a34cfaddcd9c98449b049eee884e1a74295780448ad06",
}
LYRA_COMMIT = "47698dad"  # google/lyra, 2022-12-20 (v1.3.2 model files)
LYRA_URL_TEMPLATE = (
    "https://raw.githubusercontent.com/google/lyra/{commit}/lyra/model_coeffs/"
    "{name}"
)

# --- Tokenizer quality (the paper's tokenizer comparison, Table I) -----------
# AudioLM (arXiv 2209.03143) compares its tokenizers on LibriSpeech dev-clean:
# ABX error rates in percent (within / across speaker) and ViSQOL of the audio
# reconstructed from the tokens (SoundStream's decoder for acoustic tokens).
PAPER_CITATION = "Borsos et al., AudioLM, arXiv 2209.03143 (2022), Table I"
PAPER_ABX_SEMANTIC = (6.7, 7.6)  # w2v-BERT k-means tokens, within / across %
PAPER_ABX_ACOUSTIC_6KBPS = (17.8, 26.6)  # SoundStream 6 kbps, within / across
PAPER_VISQOL_SEMANTIC = 1.1  # audio reconstructed from w2v-BERT tokens
PAPER_VISQOL_ACOUSTIC = {6.0: 3.9, 2.0: 3.3}  # SoundStream kbps -> ViSQOL
# --- Evaluation: the paper's figures (AudioLM, Borsos et al., 2022) ----------
# Zero-resource metrics on the ZeroSpeech 2021 test sets (paper, Table 4).
PAPER_SWUGGY_ALL = 71.5  # % sWUGGY, all pairs
PAPER_SWUGGY_IN_VOCAB = 83.7  # % sWUGGY, words in LibriSpeech's vocabulary
PAPER_SBLIMP = 64.7  # % sBLIMP
# ASR on acoustic generation from ground-truth semantic tokens of LibriSpeech
# test-clean (paper, Table 2), and on the original audio, in %.
PAPER_ASR_CER = 3.4
PAPER_ASR_WER = 6.0
PAPER_ASR_CER_ORIGINAL = 0.8
PAPER_ASR_WER_ORIGINAL = 2.5
# Synthetic-speech detector: accuracy on a balanced set of 1 s crops of
# LibriSpeech train-clean-100 originals vs AudioLM continuations (Section 6).
PAPER_DETECTOR_ACCURACY = 98.6
DETECTOR_CROP_SECONDS = 1.0

# Baselines of the paper's Table 4 (the figures the paper cites), in %.
# GSLM: Lakhotia et al., 2021, "On Generative Spoken Language Modeling from
# Raw Audio" (HuBERT units, K = 100, unit LM): sWUGGY in-vocab, sBLIMP.
GSLM_SWUGGY_IN_VOCAB = 68.7
GSLM_SBLIMP = 57.1
