"""Generation without T5X: constraints, the chain with stand-in models, codec
decoding with the real Lyra files, and the Beam job's output layout.

The T5X-backed stages are tested in tests/test_generation_t5x.py.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from audiolm_t5x import constants
from audiolm_t5x.pipelines.generation import chain
from audiolm_t5x.pipelines.generation import constraints
from audiolm_t5x.pipelines.generation import job
from audiolm_t5x.pipelines.generation import stage_model
from audiolm_t5x.tasks import vocabulary

# The test dataset's layout (tests/conftest.py): K=16, Q=12 levels of N=256.
LAYOUT = vocabulary.VocabularyLayout.from_sizes(
    semantic_codebook_size=16, acoustic_levels=12, acoustic_codebook_size=256)
TEST_LYRA = ["--acoustic_option=levels=24", "--acoustic_option=pack=2"]


class RecordingStandIn(stage_model.StandInModel):
  """The stand-in, keeping every request it was given."""

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    self.requests = []

  def generate(self, requests, **kwargs):
    self.requests.append(list(requests))
    return super().generate(requests, **kwargs)


def _generator(codec=None, cls=RecordingStandIn):
  mk = lambda seed, bi: cls(LAYOUT.padded_size, model_seed=seed,
                            bidirectional_inputs=bi)
  return chain.Generator(semantic_model=mk(1, False), coarse_model=mk(2, True),
                         fine_model=mk(3, True), layout=LAYOUT,
                         coarse_levels=4, codec=codec)


def _prompt(pid="p", seconds=3.0, seed=0, waveform=True):
  rng = np.random.default_rng(seed)
  s = int(seconds * 25)
  # Runs of repeated semantic ids, as real 25 Hz tokens have.
  sem = np.repeat(rng.integers(0, 16, size=s), 2)[:s]
  return chain.Prompt(
      prompt_id=pid, semantic=sem,
      acoustic=rng.integers(0, 256, size=(2 * s, 12)),
      waveform=(rng.uniform(-0.5, 0.5, size=s * 640).astype(np.float32)
                if waveform else None), path=f"/x/{pid}.flac", speaker_id=7)


# --- constraints --------------------------------------------------------------
def test_constraint_ranges_per_stage():
  assert constraints.semantic(LAYOUT).ranges == ((2, 18),)
  assert constraints.coarse(LAYOUT, coarse_levels=4).ranges == (
      (18, 274), (274, 530), (530, 786), (786, 1042))
  fine = constraints.fine(LAYOUT, coarse_levels=4)
  assert fine.ranges[0] == (1042, 1298) and fine.ranges[-1] == (2834, 3090)
  assert fine.period == 8 and fine.level_of(9) == 5
  mask = constraints.coarse(LAYOUT, coarse_levels=4).allowed_mask(3200)
  assert mask.shape == (4, 3200) and mask.sum(axis=1).tolist() == [256] * 4
  assert not mask[:, :2].any()  # never PAD or EOS


def test_constraint_check_names_stage_and_position():
  c = constraints.coarse(LAYOUT, coarse_levels=4)
  c.check([18, 274, 530, 786, 19])
  with pytest.raises(constraints.GenerationError,
                     match=r"stage 2 \(coarse\), prompt 'a': target position "
                     r"6 holds acoustic level 2, allowed ids \[530, 786\), "
                     r"found 1"):
    c.check([18, 274, 1], start=4, where=", prompt 'a'")
  with pytest.raises(constraints.GenerationError, match="position 0 holds a "
                     "semantic id"):
    constraints.semantic(LAYOUT).check([1])


def test_raw_and_lm_ids_round_trip():
  c = constraints.fine(LAYOUT, coarse_levels=4)
  raw = np.arange(16).reshape(2, 8)
  lm = constraints.to_lm(c, raw)
  assert lm[:3].tolist() == [1042, 1299, 1556]
  np.testing.assert_array_equal(constraints.to_raw(c, lm, layout=LAYOUT), raw)


# --- the chain ------------------------------------------------------------------
def test_continuation_chain_inputs_lengths_and_prompt():
  g = _generator()
  p = _prompt()
  settings = chain.GenerationSettings(seconds=7.0, num_samples=2, seed=3)
  out = g.generate([p, _prompt("q", seed=1)], mode="continuation",
                   settings=settings)
  assert [(s.prompt_id, s.sample_index) for s in out] == [
      ("p", 0), ("p", 1), ("q", 0), ("q", 1)]
  s = out[0]
  assert s.semantic.shape == (175,) and s.coarse.shape == (350, 4)
  assert s.fine.shape == (350, 8) and s.codes.shape == (350, 12)
  np.testing.assert_array_equal(s.semantic[:75], p.semantic)
  np.testing.assert_array_equal(s.codes[:150], p.acoustic)  # prompt frames
  assert s.semantic.max() < 16 and s.codes.max() < 256 and s.codes.min() >= 0
  assert not np.array_equal(out[0].codes, out[1].codes)
  # Stage 1: inputs = the deduplicated prompt, 100 new tokens.
  (r1,) = g.models["semantic"].requests
  assert r1[0].inputs.tolist() == (chain.dedup(p.semantic) + 2).tolist()
  assert r1[0].length == 100 and not r1[0].forced.size
  # Stage 2: inputs = the whole semantic sequence deduplicated; the prompt's
  # 150 coarse frames forced, 350 frames x 4 levels in all.
  (r2,) = g.models["coarse"].requests
  assert r2[0].inputs.tolist() == (chain.dedup(s.semantic) + 2).tolist()
  assert r2[0].forced.tolist() == constraints.to_lm(
      g.constraints["coarse"], p.acoustic[:150, :4]).tolist()
  assert r2[0].length == 1400
  # Stage 3: one call; 3 s windows: [0,150) is the prompt (copied),
  # [150,300) and [300,350) sampled for 4 rows.
  (r3,) = g.models["fine"].requests
  assert [r.length for r in r3] == [1200, 400] * 4
  assert r3[1].inputs.tolist() == constraints.to_lm(
      g.constraints["coarse"], s.coarse[300:350]).tolist()


def test_same_seed_same_tokens_other_seed_other_tokens():
  runs = [_generator().generate([_prompt()], mode="continuation",
                                settings=chain.GenerationSettings(
                                    seconds=4.0, seed=seed))[0]
          for seed in (5, 5, 6)]
  np.testing.assert_array_equal(runs[0].codes, runs[1].codes)
  np.testing.assert_array_equal(runs[0].semantic, runs[1].semantic)
  assert not np.array_equal(runs[0].codes, runs[2].codes)


def test_a_sample_does_not_depend_on_its_batch():
  """(seed, prompt id, sample index) alone fix a sample: not the batch."""
  settings = chain.GenerationSettings(seconds=4.0, num_samples=2, seed=3)
  alone = _generator().generate([_prompt("b", seed=1)], mode="continuation",
                                settings=settings)
  mixed = _generator().generate([_prompt("a"), _prompt("b", seed=1)],
                                mode="continuation", settings=settings)
  for k in range(2):
    np.testing.assert_array_equal(alone[k].codes, mixed[2 + k].codes)
    np.testing.assert_array_equal(alone[k].semantic, mixed[2 + k].semantic)
  assert not np.array_equal(alone[0].codes, alone[1].codes)


def test_window_straddling_the_prompt_is_forced():
  g = _generator()
  p = _prompt(seconds=4.0)
  settings = chain.GenerationSettings(seconds=7.0, prompt_seconds=4.0,
                                      fine_window_seconds=3.0)
  (s,) = g.generate([p], mode="continuation", settings=settings)
  np.testing.assert_array_equal(s.codes[:200], p.acoustic[:200])
  (r3,) = g.models["fine"].requests
  assert [len(r.forced) for r in r3] == [50 * 8, 0]  # frames 150..199 known


def test_unconditional_and_resynthesis():
  g = _generator()
  settings = chain.GenerationSettings(seconds=3.0, prompt_seconds=0.0)
  rows = [chain.unconditional_prompt(k, acoustic_levels=12) for k in range(2)]
  out = g.generate(rows, mode="unconditional", settings=settings)
  assert [s.prompt_id for s in out] == ["unconditional-0", "unconditional-1"]
  assert out[0].semantic.shape == (75,) and out[0].codes.shape == (150, 12)
  assert not g.models["semantic"].requests[0][0].inputs.size
  assert not g.models["coarse"].requests[0][0].forced.size

  g = _generator()
  p = _prompt(seconds=3.0)
  (s,) = g.generate([p], mode="resynthesis", settings=settings)
  np.testing.assert_array_equal(s.semantic, p.semantic)  # real tokens
  assert not g.models["semantic"].requests  # stage 1 not run
  assert not g.models["coarse"].requests[0][0].forced.size
  with pytest.raises(chain.GenerationError, match="resynthesis needs 4 s"):
    g.generate([p], mode="resynthesis",
               settings=chain.GenerationSettings(seconds=4.0))


class _OutOfRange(stage_model.StandInModel):
  def generate(self, requests, **kwargs):
    out = super().generate(requests, **kwargs)
    out[0][len(requests[0].forced) + 2] = 1  # EOS inside a coarse target
    return out


def test_out_of_range_ids_are_an_error_naming_the_stage():
  g = _generator()
  g.models["coarse"] = _OutOfRange(LAYOUT.padded_size)
  with pytest.raises(chain.GenerationError,
                     match=r"stage 2 \(coarse\), prompt 'p' sample 0: target "
                     r"position 602 holds acoustic level 2.*found 1"):
    g.generate([_prompt()], mode="continuation",
               settings=chain.GenerationSettings(seconds=4.0))


def test_settings_are_checked():
  with pytest.raises(ValueError, match="whole number of semantic frames"):
    chain.GenerationSettings(prompt_seconds=3.01)
  with pytest.raises(ValueError, match="at most one"):
    stage_model.SamplingSettings(0.6, top_k=5, top_p=0.9)
  s = chain.GenerationSettings(seconds=10.01)
  assert (s.semantic_frames, s.acoustic_frames, s.num_audio_samples) == (
      251, 502, 160160)


# --- decoding with the real Lyra files ----------------------------------------
def test_lyra_decoding_length_and_prompt_samples(lyra_dir):
  from audiolm_t5x.pipelines.tokenizers import lyra  # pylint: disable=g-import-not-at-top
  codec = lyra.LyraSoundStream(str(lyra_dir), levels=24, pack=2)
  g = _generator(codec=codec)
  p = _prompt(seconds=3.0)
  settings = chain.GenerationSettings(seconds=4.03)
  (s,) = g.generate([p], mode="continuation", settings=settings)
  assert s.codes.shape == (202, 12)
  assert s.waveform.shape == (64480,) and s.waveform.dtype == np.float32
  np.testing.assert_array_equal(s.waveform[:48000], p.waveform)
  tail = s.waveform[48000:]
  assert np.all(np.isfinite(tail)) and np.abs(tail).max() > 0
  # Without the prompt's audio (token dataset prompts) the codes are decoded.
  q = _prompt(seconds=3.0, waveform=False)
  (t,) = g.generate([q], mode="continuation", settings=settings)
  np.testing.assert_allclose(
      t.waveform, codec.decode(t.codes)[:64480], atol=0)


# --- the Beam job ---------------------------------------------------------------
def _job_flags(tmp_path, kmeans_codebook, lyra_dir, prompts):
  return [f"--prompts={prompts}", f"--output_dir={tmp_path / 'out'}",
          f"--kmeans={kmeans_codebook}", f"--lyra_dir={lyra_dir}", *TEST_LYRA,
          "--semantic_checkpoint=stand-in:0", "--coarse_checkpoint=stand-in:0",
          "--fine_checkpoint=stand-in:0", "--seconds=4", "--num_samples=2",
          "--seed=1"]


def test_job_writes_the_output_layout(tmp_path, clips_dir, kmeans_codebook,
                                      lyra_dir):
  clip = clips_dir / "2412-153948-0001.flac"
  wave, sr = sf.read(clip, dtype="float32")
  short = tmp_path / "prompts" / "short-clip.wav"
  short.parent.mkdir()
  sf.write(short, wave[:2 * sr], sr)
  (tmp_path / "prompts" / "broken.flac").write_bytes(b"not audio")
  sf.write(tmp_path / "prompts" / "1-2-3.wav", wave[:5 * sr], sr)
  summary = job.run(_job_flags(tmp_path, kmeans_codebook, lyra_dir,
                               tmp_path / "prompts"))
  out = tmp_path / "out"
  assert summary["counts"] == {"prompts": 3, "prompts_generated": 1,
                               "prompts_skipped": 2, "samples_written": 2,
                               "audio_seconds": 8.0}
  reasons = {s["prompt_id"]: s["reason"] for s in summary["skipped"]}
  assert reasons["short-clip"] == ("too short: 2.00 s, continuation needs 3 s")
  assert reasons["broken"].startswith("unreadable: not a readable audio file")
  assert json.loads((out / "generation.json").read_text()) == summary
  for k in (0, 1):
    audio, rate = sf.read(out / "1-2-3" / f"sample-{k}.wav", dtype="int16")
    info = sf.info(out / "1-2-3" / f"sample-{k}.wav")
    assert (rate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert audio.shape == (64000,)
    # The prompt's own first 3 s, as PCM16.
    np.testing.assert_array_equal(
        audio[:48000], np.round(np.clip(wave[:48000], -1, 1) * 32767).astype(
            np.int16))
    arrays = np.load(out / "1-2-3" / f"sample-{k}.npz")
    assert {n: arrays[n].shape for n in arrays.files} == {
        "semantic": (100,), "coarse": (200, 4), "fine": (200, 8),
        "codes": (200, 12)}
    np.testing.assert_array_equal(arrays["codes"][:, :4], arrays["coarse"])
    meta = json.loads((out / "1-2-3" / f"sample-{k}.json").read_text())
    assert meta["prompt_id"] == "1-2-3" and meta["speaker_id"] == 1
    assert meta["mode"] == "continuation" and meta["sample_index"] == k
    assert (meta["prompt_seconds"], meta["seconds"], meta["sample_rate"],
            meta["seed"]) == (3.0, 4.0, 16000, 1)
    assert meta["temperatures"] == {"semantic": 0.6, "coarse": 0.8,
                                    "fine": 0.6}
    assert (meta["top_k"], meta["top_p"]) == (0, 0.0)
    assert meta["checkpoints"] == {s: "stand-in:0" for s in job.STAGES}
    assert meta["codec"]["name"] == "lyra"
    assert (meta["codec"]["levels"], meta["codec"]["codes"]) == (12, 256)
    assert meta["transcript"] == "" and meta["prompt_path"].endswith("1-2-3.wav")
  # Deterministic: the same flags give the same files.
  first = (out / "1-2-3" / "sample-1.npz").read_bytes()
  job.run(_job_flags(tmp_path, kmeans_codebook, lyra_dir,
                     tmp_path / "prompts"))
  assert (out / "1-2-3" / "sample-1.npz").read_bytes() == first


def test_job_from_a_token_dataset(tmp_path, tokenized_dataset, lyra_dir,
                                  kmeans_codebook):
  flags = _job_flags(tmp_path, kmeans_codebook, lyra_dir, tokenized_dataset)
  summary = job.run(flags + ["--split=dev-clean", "--mode=resynthesis",
                             "--prompt_seconds=0", "--num_samples=1"])
  assert summary["counts"]["samples_written"] == 2
  out = tmp_path / "out" / "2412-153948-0000"
  meta = json.loads((out / "sample-0.json").read_text())
  assert (meta["mode"], meta["prompt_audio"], meta["prompt_seconds"]) == (
      "resynthesis", "none", 0.0)
  assert meta["transcript"].startswith("PLACEHOLDER")
  # Resynthesis keeps the record's own first 4 s of semantic tokens.
  from audiolm_t5x.pipelines.generation import prompts  # pylint: disable=g-import-not-at-top
  (record,) = [r for r in prompts.read_records(str(tokenized_dataset),
                                               split="dev-clean")
               if r.id == "2412-153948-0000"]
  np.testing.assert_array_equal(np.load(out / "sample-0.npz")["semantic"],
                                record.semantic_tokens[:100])
  assert sf.info(out / "sample-0.wav").frames == 64000


# The piano's layout (3 levels): Lyra levels=9 pack=3 = 3 x 4096 codes.
PIANO_LYRA = ["--acoustic_option=levels=9", "--acoustic_option=pack=3"]
PIANO_GINS = ["--semantic_gin=infer/piano_semantic.gin",
              "--coarse_gin=infer/piano_acoustic.gin"]


def test_job_runs_two_stages_for_a_layout_without_fine_levels(
    tmp_path, clips_dir, kmeans_codebook, lyra_dir):
  clip = "2412-153948-0000"
  summary = job.run([
      f"--prompts={clips_dir / f'{clip}.flac'}", f"--output_dir={tmp_path}",
      f"--kmeans={kmeans_codebook}", f"--lyra_dir={lyra_dir}", *PIANO_LYRA,
      *PIANO_GINS, "--semantic_checkpoint=stand-in:0",
      "--coarse_checkpoint=stand-in:0", "--seconds=3.4", "--seed=1"])
  assert summary["counts"]["samples_written"] == 1
  assert summary["coarse_levels"] == 3
  assert summary["checkpoints"] == {"semantic": "stand-in:0",
                                    "coarse": "stand-in:0"}
  assert sorted(summary["settings"]["sampling"]) == ["coarse", "semantic"]
  arrays = np.load(tmp_path / clip / "sample-0.npz")
  assert {n: arrays[n].shape for n in arrays.files} == {
      "semantic": (85,), "coarse": (170, 3), "fine": (170, 0),
      "codes": (170, 3)}
  assert 0 <= arrays["codes"].min() and arrays["codes"].max() < 4096
  meta = json.loads((tmp_path / clip / "sample-0.json").read_text())
  assert meta["temperatures"] == {"semantic": 0.6, "coarse": 0.8}
  assert (meta["codec"]["levels"], meta["codec"]["codes"]) == (3, 4096)
  assert sf.info(tmp_path / clip / "sample-0.wav").frames == 54400


@pytest.mark.parametrize("extra,message", [
    # Speech gins over a 12-level layout: levels 5-12 need stage 3.
    (TEST_LYRA, "--fine_checkpoint: the codec layout has Q=12 levels and "
     "--coarse_gin's task audiolm_coarse_v001 predicts Q'=4: levels 5-12 need "
     "stage 3's checkpoint"),
    # The piano's acoustic stage predicts all 3 levels: no stage 3.
    (PIANO_LYRA + PIANO_GINS + ["--fine_checkpoint=stand-in:0"],
     "predicts all Q=3 levels of the codec layout; there is no fine stage to "
     "run: drop --fine_checkpoint"),
    # Speech gins over the piano's layout.
    (PIANO_LYRA, "its task audiolm_coarse_v001 predicts Q'=4 acoustic levels,"
     " the codec layout has only Q=3"),
    (PIANO_LYRA + ["--coarse_gin=infer/piano_acoustic.gin"],
     "--semantic_gin is a speech gin, --coarse_gin a piano gin"),
])
def test_job_fine_checkpoint_follows_the_layout(tmp_path, clips_dir, lyra_dir,
                                                kmeans_codebook, capsys, extra,
                                                message):
  assert job.main([f"--prompts={clips_dir}", f"--output_dir={tmp_path / 'out'}",
                   f"--kmeans={kmeans_codebook}", f"--lyra_dir={lyra_dir}",
                   "--semantic_checkpoint=stand-in:0",
                   "--coarse_checkpoint=stand-in:0", *extra]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err
  assert not (tmp_path / "out").exists()  # before any compute


@pytest.mark.parametrize("extra,message", [
    (["--seconds=2"], "seconds: expected more than prompt_seconds=3.0"),
    (["--fine_checkpoint=/nonexistent/checkpoint_1"],
     "--fine_checkpoint: /nonexistent/checkpoint_1 does not exist"),
    (["--top_k=5", "--top_p=0.5"], "top_k and top_p: set at most one"),
])
def test_job_user_errors_exit_2(tmp_path, clips_dir, capsys, extra, message):
  flags = [f"--prompts={clips_dir}", f"--output_dir={tmp_path}",
           "--semantic_checkpoint=stand-in:0", "--coarse_checkpoint=stand-in:0",
           "--fine_checkpoint=stand-in:0", *extra]
  assert job.main(flags) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and message in err[0], err


def test_command_refuses_unknown_flags(tmp_path):
  proc = subprocess.run(
      [sys.executable, "-m", "pipelines.generate", f"--output_dir={tmp_path}",
       "--semantic_checkpoint=stand-in:0", "--coarse_checkpoint=stand-in:0",
       "--fine_checkpoint=stand-in:0", "--no_such_flag=1"],
      capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert proc.stderr.strip().splitlines() == [
      "python -m pipelines.generate: error: unknown flag --no_such_flag=1: "
      "neither this command nor Beam's PipelineOptions knows it (see --help)"]
