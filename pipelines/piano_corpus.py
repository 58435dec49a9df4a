"""An offline piano corpus: generated MIDI pieces RENDERED with FluidSynth.

Nothing here is a recording. Each piece is written as MIDI (``pretty_midi``)
from a seeded generator and rendered to audio by FluidSynth with a General
MIDI soundfont (Debian's ``fluid-soundfont-gm``: FluidR3_GM.sf2, program 0,
Acoustic Grand Piano). The corpus stands in for the paper's piano data (which
was not released) so that the piano tasks and gins can run end to end; the
word "rendered" is in every split name, file name, record id and metadata
file, so no output of the project can pass it off as recorded piano.

Kinds of pieces (``KINDS``; the number is the kind's id):

0 ``scale``        major / minor scales up and down, eighth notes
1 ``arpeggio``     broken chords of a I-IV-V-vi progression, up and down
2 ``chords``       block chords of a common progression over a bass note
3 ``random_walk``  a melody walking the scale with random rhythm and dynamics

Every piece is a pure function of ``(kind, seed)``: key, tempo, velocities
and notes come from ``numpy.random.default_rng(seed)``; FluidSynth renders
the same MIDI to the same samples.

Layout (Libri-Light-shaped, so ``pipelines.tokenize_corpus
--corpus=librilight`` reads it; no transcripts)::

  <root>/README.txt                     what this is: rendered, not recorded
  <root>/manifest.jsonl                 one JSON line per piece
  <root>/<split>/<kind id>/<seed>/rendered_<kind>_<seed>.flac   16 kHz mono
  <root>/<split>/<kind id>/<seed>/rendered_<kind>_<seed>.mid    the score
  <root>/<split>/<kind id>/<seed>/rendered_<kind>_<seed>.json   its metadata

Splits are ``train-rendered`` and ``dev-rendered`` (the tasks take ``dev*``
splits for validation). Records get ``speaker_id`` = kind id and
``chapter_id`` = seed.

Audio: FluidSynth renders stereo at 16 kHz with gain ``gain`` (its default
0.2 is quiet); the channels are averaged, the piece cut to exactly
``seconds`` (the last 50 ms faded out) and scaled to a peak of ``peak``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from typing import Callable, Iterator, Optional, Sequence

import numpy as np

from audiolm_t5x import constants

SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
PIANO_PROGRAM = 0  # General MIDI: Acoustic Grand Piano
TRAIN_SPLIT = "train-rendered"
DEV_SPLIT = "dev-rendered"
LABEL = ("RENDERED, NOT RECORDED: synthesized by FluidSynth from generated "
         "MIDI with a General MIDI soundfont")
FADE_SECONDS = 0.05
MANIFEST = "manifest.jsonl"
README = "README.txt"

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)


class PianoCorpusError(RuntimeError):
  """FluidSynth or the soundfont is missing, or rendering failed."""


@dataclasses.dataclass(frozen=True)
class Note:
  pitch: int
  start: float
  end: float
  velocity: int


# --- Generators: (rng, seconds) -> notes ---------------------------------------
def _key(rng: np.random.Generator) -> tuple[int, tuple[int, ...]]:
  root = int(rng.integers(48, 61))  # C3..C4
  return root, MAJOR if rng.random() < 0.5 else MINOR


def _pitch(root: int, mode: Sequence[int], degree: int) -> int:
  octave, step = divmod(degree, len(mode))
  return root + 12 * octave + mode[step]


def _beat(rng: np.random.Generator) -> float:
  return 60.0 / float(rng.integers(80, 141))  # seconds per quarter note


def scale(rng: np.random.Generator, seconds: float) -> list[Note]:
  root, mode = _key(rng)
  step = _beat(rng) / 2
  octaves = int(rng.integers(1, 3))
  up = list(range(0, 7 * octaves + 1))
  degrees = up + up[-2:0:-1]
  vel = int(rng.integers(60, 100))
  notes, t, i = [], 0.0, 0
  while t + step <= seconds:
    notes.append(Note(_pitch(root, mode, degrees[i % len(degrees)]), t,
                      t + step * 0.95, vel))
    t += step
    i += 1
  return notes


PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (5, 3, 0, 4))


def arpeggio(rng: np.random.Generator, seconds: float) -> list[Note]:
  root, mode = _key(rng)
  step = _beat(rng) / 2
  prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
  vel = int(rng.integers(55, 95))
  notes, t, bar = [], 0.0, 0
  while t + step <= seconds:
    base = prog[bar % len(prog)]
    shape = [base, base + 2, base + 4, base + 7, base + 4, base + 2]
    for d in shape:
      if t + step > seconds:
        break
      notes.append(Note(_pitch(root, mode, d), t, t + step * 1.5, vel))
      t += step
    bar += 1
  return notes


def chords(rng: np.random.Generator, seconds: float) -> list[Note]:
  root, mode = _key(rng)
  length = _beat(rng) * 2  # half notes
  prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
  notes, t, bar = [], 0.0, 0
  while t + length <= seconds:
    base = prog[bar % len(prog)]
    vel = int(rng.integers(50, 90))
    for d in (base, base + 2, base + 4):
      notes.append(Note(_pitch(root, mode, d + 7), t, t + length * 0.98, vel))
    notes.append(Note(_pitch(root, mode, base) - 12, t, t + length * 0.98,
                      min(127, vel + 10)))
    t += length
    bar += 1
  return notes


def random_walk(rng: np.random.Generator, seconds: float) -> list[Note]:
  root, mode = _key(rng)
  beat = _beat(rng)
  lengths = np.array([0.25, 0.5, 0.75, 1.0, 1.5, 2.0]) * beat
  weights = np.array([2, 4, 1, 3, 1, 1], np.float64)
  degree = 7
  notes, t = [], 0.0
  while True:
    dur = float(rng.choice(lengths, p=weights / weights.sum()))
    if t + dur > seconds:
      break
    if rng.random() > 0.1:  # else a rest
      notes.append(Note(_pitch(root, mode, degree), t, t + dur * 0.9,
                        int(rng.integers(40, 110))))
    degree = int(np.clip(degree + rng.choice([-2, -1, -1, 1, 1, 2]), 0, 14))
    t += dur
  return notes


KINDS: dict[str, tuple[int, Callable[[np.random.Generator, float],
                                     list[Note]]]] = {
    "scale": (0, scale),
    "arpeggio": (1, arpeggio),
    "chords": (2, chords),
    "random_walk": (3, random_walk),
}


@dataclasses.dataclass(frozen=True)
class PieceSpec:
  """One piece of the corpus: which generator, which seed, how long."""

  split: str
  kind: str
  seed: int
  seconds: float

  @property
  def kind_id(self) -> int:
    return KINDS[self.kind][0]

  @property
  def name(self) -> str:
    return f"rendered_{self.kind}_{self.seed}"

  @property
  def rel_dir(self) -> str:
    return f"{self.split}/{self.kind_id}/{self.seed}"

  def notes(self) -> list[Note]:
    rng = np.random.default_rng([self.kind_id, self.seed])
    return KINDS[self.kind][1](rng, self.seconds)


def plan(*, seed: int, train_pieces: int, dev_pieces: int, seconds: float,
         kinds: Sequence[str] = tuple(KINDS)) -> list[PieceSpec]:
  """The pieces of a corpus: kinds in turn, seeds ``seed * 100000 + i``.

  Train and dev pieces have different seeds, so no piece is in both.
  """
  unknown = [k for k in kinds if k not in KINDS]
  if unknown:
    raise ValueError(f"unknown piece kinds {unknown}; known: {list(KINDS)}")
  out = []
  for split, count, offset in ((TRAIN_SPLIT, train_pieces, 0),
                               (DEV_SPLIT, dev_pieces, train_pieces)):
    for i in range(count):
      out.append(PieceSpec(split, kinds[i % len(kinds)],
                           seed * 100_000 + offset + i, seconds))
  return out


def write_midi(notes: Sequence[Note], path: str, *,
               program: int = PIANO_PROGRAM) -> None:
  import pretty_midi  # pylint: disable=g-import-not-at-top

  pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
  inst = pretty_midi.Instrument(program=program, name="piano")
  inst.notes = [pretty_midi.Note(velocity=n.velocity, pitch=n.pitch,
                                 start=n.start, end=n.end) for n in notes]
  pm.instruments.append(inst)
  pm.write(path)


def check_renderer(soundfont: str = SOUNDFONT) -> str:
  """Returns the fluidsynth binary, or raises PianoCorpusError saying why not."""
  binary = shutil.which("fluidsynth")
  if binary is None:
    raise PianoCorpusError(
        "fluidsynth is not installed (Debian/Ubuntu: apt-get install "
        "fluidsynth fluid-soundfont-gm)")
  if not os.path.isfile(soundfont):
    raise PianoCorpusError(
        f"soundfont {soundfont} not found (Debian/Ubuntu: apt-get install "
        "fluid-soundfont-gm, or pass --soundfont)")
  return binary


def render(midi_path: str, *, seconds: float, soundfont: str = SOUNDFONT,
           gain: float = 1.0, peak: float = 0.7) -> np.ndarray:
  """FluidSynth -> mono float32 at 16 kHz, exactly ``seconds`` long."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  binary = check_renderer(soundfont)
  with tempfile.TemporaryDirectory() as tmp:
    wav = os.path.join(tmp, "out.wav")
    cmd = [binary, "-ni", "-q", "-g", str(gain), "-r",
           str(constants.SAMPLE_RATE), "-F", wav, soundfont, midi_path]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not os.path.isfile(wav):
      raise PianoCorpusError(f"{' '.join(cmd)} failed: {proc.stderr[-500:]}")
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
  if rate != constants.SAMPLE_RATE:
    raise PianoCorpusError(f"fluidsynth wrote {rate} Hz, asked for "
                           f"{constants.SAMPLE_RATE}")
  mono = audio.mean(axis=1)
  n = int(round(seconds * constants.SAMPLE_RATE))
  mono = np.pad(mono[:n], (0, max(0, n - mono.shape[0])))
  fade = min(n, int(FADE_SECONDS * constants.SAMPLE_RATE))
  if fade:
    mono[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
  top = float(np.abs(mono).max())
  if top > 0:
    mono = mono * (peak / top)
  return mono.astype(np.float32)


def _sha256(path: str) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def fluidsynth_version() -> str:
  out = subprocess.run([shutil.which("fluidsynth") or "fluidsynth",
                        "--version"], capture_output=True, text=True,
                       check=False).stdout
  return out.splitlines()[0].strip() if out else "unknown"


def build_corpus(output_dir: str, pieces: Sequence[PieceSpec], *,
                 soundfont: str = SOUNDFONT, gain: float = 1.0,
                 peak: float = 0.7,
                 progress: Optional[Callable[[PieceSpec], None]] = None
                 ) -> list[dict]:
  """Writes every piece (MIDI, FLAC, JSON), README.txt and manifest.jsonl.

  Returns the manifest rows.
  """
  import soundfile as sf  # pylint: disable=g-import-not-at-top

  check_renderer(soundfont)
  renderer = {"fluidsynth": fluidsynth_version(), "soundfont": soundfont,
              "soundfont_bytes": os.path.getsize(soundfont), "gain": gain,
              "peak": peak, "program": PIANO_PROGRAM}
  rows = []
  for piece in pieces:
    folder = os.path.join(output_dir, piece.rel_dir)
    os.makedirs(folder, exist_ok=True)
    stem = os.path.join(folder, piece.name)
    notes = piece.notes()
    write_midi(notes, stem + ".mid")
    audio = render(stem + ".mid", seconds=piece.seconds, soundfont=soundfont,
                   gain=gain, peak=peak)
    sf.write(stem + ".flac", audio, constants.SAMPLE_RATE, subtype="PCM_16")
    row = {
        "label": LABEL, "rendered": True, "recorded": False,
        "id": f"{piece.kind_id}/{piece.seed}/{piece.name}",
        "split": piece.split, "kind": piece.kind, "kind_id": piece.kind_id,
        "seed": piece.seed, "seconds": piece.seconds,
        "num_samples": int(audio.shape[0]), "notes": len(notes),
        "audio": f"{piece.rel_dir}/{piece.name}.flac",
        "midi": f"{piece.rel_dir}/{piece.name}.mid",
        "audio_sha256": _sha256(stem + ".flac"), "renderer": renderer,
    }
    with open(stem + ".json", "w") as f:
      json.dump(row, f, indent=1, sort_keys=True)
    rows.append(row)
    if progress:
      progress(piece)
  with open(os.path.join(output_dir, MANIFEST), "w") as f:
    for row in rows:
      f.write(json.dumps(row, sort_keys=True) + "\n")
  with open(os.path.join(output_dir, README), "w") as f:
    f.write(readme_text(rows, renderer))
  return rows


def readme_text(rows: Sequence[dict], renderer: dict) -> str:
  seconds = sum(r["seconds"] for r in rows)
  per_split = {}
  for r in rows:
    per_split[r["split"]] = per_split.get(r["split"], 0) + 1
  return (
      f"{LABEL}.\n\n"
      "This folder is a synthetic piano corpus made by audiolm-t5x "
      "(pipelines/piano_corpus.py).\nNo audio here was recorded: every file "
      "was rendered by FluidSynth from a MIDI score that a seeded generator "
      "wrote (scales, arpeggios, chord progressions, random walks).\n\n"
      f"Pieces: {len(rows)} ({', '.join(f'{k}: {v}' for k, v in sorted(per_split.items()))}), "
      f"{seconds:.1f} s of audio, 16 kHz mono FLAC.\n"
      f"Renderer: {renderer['fluidsynth']}, soundfont {renderer['soundfont']}"
      f" (program {renderer['program']}, gain {renderer['gain']}, peak "
      f"{renderer['peak']}).\n\n"
      "Layout: <split>/<kind id>/<seed>/rendered_<kind>_<seed>.{flac,mid,json};"
      " manifest.jsonl lists every piece.\nTokenize it with "
      "`python -m pipelines.tokenize_corpus --corpus=librilight "
      "--input_dir=THIS_FOLDER ...`.\n")


def iter_manifest(output_dir: str) -> Iterator[dict]:
  with open(os.path.join(output_dir, MANIFEST)) as f:
    for line in f:
      if line.strip():
        yield json.loads(line)


# --- The command ----------------------------------------------------------------
MODULE = "audiolm_t5x.pipelines.make_piano_corpus"


def make_parser():
  from audiolm_t5x.pipelines import options as options_lib  # pylint: disable=g-import-not-at-top

  p = options_lib.CommandParser(
      prog=options_lib.invocation(MODULE), beam=False,
      description="Write an offline piano corpus: generated MIDI pieces "
      "RENDERED with FluidSynth (not recorded), 16 kHz mono FLAC in a "
      "Libri-Light-shaped layout.")
  p.add_argument("--output_dir", required=True,
                 help="folder of the corpus (created)")
  p.add_argument("--seed", type=int, default=0,
                 help="corpus seed; piece i gets seed seed*100000+i")
  p.add_argument("--train_pieces", type=int, default=40,
                 help=f"pieces in {TRAIN_SPLIT}")
  p.add_argument("--dev_pieces", type=int, default=8,
                 help=f"pieces in {DEV_SPLIT}")
  p.add_argument("--seconds", type=float, default=30.0,
                 help="length of every piece in seconds")
  p.add_argument("--kinds", default=",".join(KINDS),
                 help="comma-separated piece kinds, used in turn")
  p.add_argument("--soundfont", default=SOUNDFONT,
                 help="General MIDI soundfont (.sf2) for FluidSynth")
  p.add_argument("--gain", type=float, default=1.0,
                 help="FluidSynth's master gain (its default 0.2 is quiet)")
  p.add_argument("--peak", type=float, default=0.7,
                 help="every piece is scaled to this peak amplitude")
  return p


def run(argv: Optional[Sequence[str]] = None) -> list:
  """Checks the flags, renders the corpus, prints a summary; returns rows.

  Raises:
    UserError: a flag to change, or no renderer (before any rendering).
  """
  import time  # pylint: disable=g-import-not-at-top

  from audiolm_t5x.pipelines import options as options_lib  # pylint: disable=g-import-not-at-top

  args, _ = options_lib.parse_args(make_parser(), argv)
  with options_lib.user_errors((ValueError, PianoCorpusError)):
    kinds = [k for k in args.kinds.split(",") if k]
    if args.seconds <= 0 or args.train_pieces < 0 or args.dev_pieces < 0:
      raise ValueError("--seconds must be > 0 and piece counts >= 0")
    if not 0 < args.peak <= 1:
      raise ValueError("--peak must be in (0, 1]")
    pieces = plan(seed=args.seed, train_pieces=args.train_pieces,
                  dev_pieces=args.dev_pieces, seconds=args.seconds,
                  kinds=kinds)
    check_renderer(args.soundfont)
  start = time.monotonic()
  done = [0]

  def progress(piece):
    done[0] += 1
    print(f"  [{done[0]}/{len(pieces)}] {piece.rel_dir}/{piece.name}.flac",
          flush=True)

  print(f"rendering {len(pieces)} pieces of {args.seconds:g} s "
        f"({LABEL})")
  rows = build_corpus(args.output_dir, pieces, soundfont=args.soundfont,
                      gain=args.gain, peak=args.peak, progress=progress)
  print(f"done in {time.monotonic() - start:.1f} s: {len(rows)} rendered "
        f"pieces, {sum(r['seconds'] for r in rows):.0f} s of audio in "
        f"{args.output_dir} (manifest: {MANIFEST}, README: {README})")
  return rows


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Command entry point: exit 0 with a summary, 2 on a user error."""
  from audiolm_t5x.pipelines import options as options_lib  # pylint: disable=g-import-not-at-top

  return options_lib.main(run, MODULE, argv)
