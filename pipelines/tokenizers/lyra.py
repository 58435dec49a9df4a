"""Google's released SoundStream (Lyra v2 TFLite) as the acoustic tokenizer.

Lyra's codec: a streaming encoder (320 samples -> 64-d features, 50 Hz), a
residual vector quantizer of 46 levels x 16 codes (4 bits each), and a
decoder. ``levels`` picks how many RVQ levels to keep (Lyra's 3.2 / 6 /
9.2 kbps use 16 / 30 / 46); ``pack`` merges p consecutive 4-bit levels into
one token of 16^p codes (level j of the output = levels p j .. p j + p - 1,
the first of them in the low bits), so ``levels=24, pack=2`` gives 12 levels
of 256 codes and ``levels=36, pack=3`` 12 levels of 4096, close to AudioLM's
12 x 1024.

Reproducibility: the encoder is stateful, so each utterance gets a fresh
interpreter; the TFLite op resolver is pinned (``resolver``) and recorded in
:meth:`LyraSoundStream.info`, because XNNPACK and the built-in kernels give
different int8 results.

Model files: ``model_dir`` argument, else ``$AUDIOLM_LYRA_DIR``, else the
cache ``~/.cache/audiolm_t5x/lyra/<commit>``; with ``download=True`` missing
files are fetched from Lyra's public repository into that cache. Every file is
checked against its sha256 before use.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import sys
import urllib.request
from typing import Optional

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines import staging
from audiolm_t5x.pipelines.tokenizers import base

ENV_VAR = "AUDIOLM_LYRA_DIR"
_ENCODER = "soundstream_encoder.tflite"
_QUANTIZER = "quantizer.tflite"
_DECODER = "lyragan.tflite"
_FRAME = constants.ACOUSTIC_FRAME_SAMPLES
RESOLVERS = ("xnnpack", "builtin")


def default_cache_dir() -> str:
  root = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
  return os.path.join(root, "audiolm_t5x", "lyra", constants.LYRA_COMMIT)


def download_model(cache_dir: Optional[str] = None) -> str:
  """Fetches Lyra's model files into ``cache_dir`` (sha256-verified)."""
  cache_dir = cache_dir or default_cache_dir()
  os.makedirs(cache_dir, exist_ok=True)
  for name, sha in constants.LYRA_FILES.items():
    path = os.path.join(cache_dir, name)
    if os.path.exists(path) and base.sha256_file(path) == sha:
      continue
    url = constants.LYRA_URL_TEMPLATE.format(commit=constants.LYRA_COMMIT,
                                             name=name)
    tmp = path + ".part"
    try:
      urllib.request.urlretrieve(url, tmp)  # noqa: S310 (fixed https URL)
    except OSError as e:  # URLError is an OSError
      raise base.TokenizerError(
          f"could not download {url} ({e}). Without network access, copy "
          f"Lyra's files ({', '.join(constants.LYRA_FILES)}) into a folder "
          f"and pass --lyra_dir or set ${ENV_VAR}.") from e
    got = base.sha256_file(tmp)
    if got != sha:
      os.remove(tmp)
      raise base.TokenizerError(
          f"downloaded {url} has sha256 {got}, expected {sha}")
    os.replace(tmp, path)
  return cache_dir


def resolve_model_dir(model_dir: Optional[str] = None, *,
                      download: bool = False) -> str:
  """Finds a directory holding Lyra's files, or says where it looked."""
  candidates = [model_dir, os.environ.get(ENV_VAR), default_cache_dir()]
  for c in candidates:
    if c and os.path.isfile(os.path.join(c, _ENCODER)):
      return c
  if download:
    return download_model()
  looked = [c for c in candidates if c]
  raise base.TokenizerError(
      f"Lyra SoundStream model files not found (looked in {looked}). Pass "
      f"--lyra_dir, set ${ENV_VAR} to a directory with {_ENCODER}, "
      f"{_QUANTIZER} and {_DECODER}, or allow the download (--lyra_download) "
      "from github.com/google/lyra.")


@contextlib.contextmanager
def _native_info_muted():
  """Mutes the process's stderr while TFLite builds an interpreter.

  TFLite's C++ logger prints ``INFO: Created TensorFlow Lite XNNPACK delegate
  for CPU.`` and reads no environment variable; the commands' quiet default
  sets ``TF_CPP_MIN_LOG_LEVEL`` (``--verbose`` does not), so this honours it:
  at 1 or more (INFO hidden) fd 2 goes to /dev/null for the construction.
  Errors still surface as Python exceptions.
  """
  try:
    level = int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
  except ValueError:
    level = 0
  if level < 1:
    yield
    return
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      try:
        yield
      finally:
        os.dup2(saved, 2)
  finally:
    os.close(saved)


def _interpreter_module():
  try:
    from ai_edge_litert import interpreter  # pylint: disable=g-import-not-at-top
    return interpreter, "ai_edge_litert"
  except ImportError:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.lite, "tf.lite"


@dataclasses.dataclass(frozen=True)
class LyraOptions(base.Options):
  """``--acoustic_option`` keys of the lyra backend (see the constructor)."""

  model_dir: Optional[str] = None
  levels: int = constants.LYRA_DEFAULT_LEVELS
  pack: int = 1
  resolver: str = "xnnpack"
  download: bool = False


@base.register_acoustic("lyra")
class LyraSoundStream(base.AcousticTokenizer):
  """Lyra v2 SoundStream: 16 kHz audio -> [T_a, levels / pack] codes, 50 Hz."""

  Options = LyraOptions

  streaming = True
  _runtime_attrs = ("_quantizer", "_quantize_runner", "_files")

  def __init__(self, model_dir: Optional[str] = None,
               levels: int = constants.LYRA_DEFAULT_LEVELS, pack: int = 1,
               resolver: str = "xnnpack", download: bool = False):
    levels, pack = int(levels), int(pack)
    if not 1 <= levels <= constants.LYRA_MAX_LEVELS:
      raise ValueError(f"lyra levels must be in [1, "
                       f"{constants.LYRA_MAX_LEVELS}], got {levels}")
    if pack < 1 or levels % pack:
      raise ValueError(f"lyra pack={pack} must divide levels={levels}")
    if resolver not in RESOLVERS:
      raise ValueError(f"lyra resolver must be one of {RESOLVERS}, got "
                       f"{resolver!r}")
    self.model_dir = model_dir
    self.raw_levels = levels
    self.pack = pack
    self.resolver = resolver
    self.download = bool(download)
    self._digests: dict[str, str] = {}
    self._clear_runtime()
    self._runtime = ""

  # -- loading -----------------------------------------------------------------
  def load(self) -> None:
    if self._quantizer is not None:
      return
    model_dir = self.model_dir
    if model_dir and not staging.is_local(model_dir):  # gs://...: copy once
      model_dir = staging.local_dir(model_dir, list(constants.LYRA_FILES))
    model_dir = resolve_model_dir(model_dir, download=self.download)
    self._files = {}
    for name, sha in constants.LYRA_FILES.items():
      path = os.path.join(model_dir, name)
      if not os.path.isfile(path):
        raise base.TokenizerError(f"Lyra model file missing: {path}")
      with open(path, "rb") as f:
        data = f.read()
      got = hashlib.sha256(data).hexdigest()
      if got != sha:
        raise base.TokenizerError(
            f"{path} has sha256 {got}, expected {sha} (Lyra v2 release "
            f"{constants.LYRA_COMMIT})")
      self._files[name] = data
      self._digests[name] = got
    if staging.is_local(self.model_dir or ""):
      self.model_dir = model_dir
    self._quantizer = self._interpreter(_QUANTIZER)
    # One runner for the worker's life: creating one per frame leaks native
    # memory (about 20 KB a frame, i.e. GBs on an hour-long recording).
    self._quantize_runner = self._quantizer.get_signature_runner("encode")

  def _interpreter(self, name: str):
    module, self._runtime = _interpreter_module()
    resolver = (module.OpResolverType.AUTO if self.resolver == "xnnpack" else
                module.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    with _native_info_muted():
      interp = module.Interpreter(model_content=self._files[name],
                                  experimental_op_resolver_type=resolver,
                                  num_threads=1)
      interp.allocate_tensors()
    return interp

  # -- description -------------------------------------------------------------
  @property
  def levels(self) -> int:
    return self.raw_levels // self.pack

  @property
  def codebook_size(self) -> int:
    return 2 ** (constants.LYRA_CODEBOOK_BITS * self.pack)

  def info(self) -> dict:
    self.load()
    settings = {"raw_levels": self.raw_levels, "pack": self.pack,
                "resolver": self.resolver, "files": self._digests}
    return {
        "name": self.name, "rate_hz": constants.ACOUSTIC_RATE_HZ,
        "levels": self.levels, "codebook_size": self.codebook_size,
        "release": f"google/lyra@{constants.LYRA_COMMIT}",
        "runtime": self._runtime, **settings,
        "fingerprint": base.fingerprint_of("lyra", settings),
    }

  # -- encoding ----------------------------------------------------------------
  def _pack(self, raw: np.ndarray) -> np.ndarray:
    """[T, raw_levels] 4-bit codes -> [T, levels] codes of 16^pack."""
    if self.pack == 1:
      return raw
    t = raw.shape[0]
    groups = raw.reshape(t, self.levels, self.pack)
    shifts = constants.LYRA_CODEBOOK_BITS * np.arange(self.pack)
    return np.sum(groups << shifts, axis=-1)

  def _unpack(self, codes: np.ndarray) -> np.ndarray:
    if self.pack == 1:
      return codes
    shifts = constants.LYRA_CODEBOOK_BITS * np.arange(self.pack)
    mask = 2 ** constants.LYRA_CODEBOOK_BITS - 1
    raw = (codes[:, :, None] >> shifts) & mask
    return raw.reshape(codes.shape[0], self.raw_levels)

  def new_stream(self) -> "_LyraStream":
    self.load()
    return _LyraStream(self)

  def encode(self, waveform: np.ndarray) -> np.ndarray:
    stream = self.new_stream()
    head = stream.push(base.check_waveform(waveform))
    return np.concatenate([head, stream.finish()])

  def _quantize(self, features: np.ndarray) -> np.ndarray:
    out = self._quantize_runner(input_frames=features.reshape(1, 1, -1).astype(np.float32),
                 num_quantizers=np.array(self.raw_levels, np.int32))
    return out["output_0"].reshape(-1)[: self.raw_levels]

  def decode(self, codes: np.ndarray) -> np.ndarray:
    """[T_a, levels] codes -> 16 kHz waveform (fresh decoder state)."""
    self.load()
    raw = self._unpack(np.asarray(codes, np.int64))
    full = -np.ones([raw.shape[0], constants.LYRA_MAX_LEVELS], np.int32)
    full[:, : self.raw_levels] = raw
    dequant = self._quantizer.get_signature_runner("decode")
    decoder = self._interpreter(_DECODER)
    inp = decoder.get_input_details()[0]["index"]
    out = decoder.get_output_details()[0]["index"]
    audio = []
    for frame in full:
      feats = dequant(encoding_indices=frame.reshape(-1, 1, 1))["output_0"]
      decoder.set_tensor(inp, feats.astype(np.float32))
      decoder.invoke()
      audio.append(decoder.get_tensor(out).reshape(-1))
    return np.concatenate(audio) if audio else np.zeros([0], np.float32)


class _LyraStream(base.FrameStream):
  """A fresh (stateful) encoder fed 20 ms frames in order."""

  def __init__(self, tok: LyraSoundStream):
    self._tok = tok
    self._enc = tok._interpreter(_ENCODER)  # pylint: disable=protected-access
    self._in = self._enc.get_input_details()[0]["index"]
    self._out = self._enc.get_output_details()[0]["index"]
    self._rest = np.zeros([0], np.float32)

  def push(self, samples: np.ndarray) -> np.ndarray:
    buf = np.concatenate([self._rest, base.check_waveform(samples)])
    n = buf.shape[0] // _FRAME
    codes = np.zeros([n, self._tok.raw_levels], np.int64)
    for i in range(n):
      self._enc.set_tensor(self._in, buf[i * _FRAME:(i + 1) * _FRAME][None])
      self._enc.invoke()
      codes[i] = self._tok._quantize(self._enc.get_tensor(self._out))  # pylint: disable=protected-access
    self._rest = buf[n * _FRAME:]
    return self._tok._pack(codes)  # pylint: disable=protected-access

  def finish(self) -> np.ndarray:
    # The contract drops a partial last frame (contract.num_acoustic_frames).
    return np.zeros([0, self._tok.levels], np.int64)
