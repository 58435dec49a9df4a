r"""Speed of the generation chain: seconds of audio per wall second.

Builds each stage's model from the project's gin files (``infer/<stage>.gin``
plus a size gin: ``models/tiny.gin`` by default, none for the paper's size)
with randomly initialised parameters (speed only: random weights say nothing
about quality), and times a continuation of random 3 s prompts to
``--seconds`` through T5X's cached sampling, per stage and for the whole
chain, after one warm-up run (compilation excluded). Optionally times Lyra's
decoder on the same number of frames (``--lyra_dir``).

  python benchmarks/generate_bench.py --size=tiny --batch_size=1
  python benchmarks/generate_bench.py --size=paper --batch_size=64  # a GPU

Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from audiolm_t5x import constants  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x import t5x_configs  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x.pipelines.generation import chain  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x.pipelines.generation import t5x_model  # pylint: disable=g-import-not-at-top,wrong-import-position
from audiolm_t5x.tasks import vocabulary  # pylint: disable=g-import-not-at-top,wrong-import-position

STAGES = ("semantic", "coarse", "fine")


class _Timed:
  """Wraps a stage model; accumulates wall time of its generate calls."""

  def __init__(self, model):
    self.model = model
    self.seconds = 0.0
    self.steps = 0
    self.vocab_size = model.vocab_size
    self.bidirectional_inputs = model.bidirectional_inputs

  def generate(self, requests, **kwargs):
    start = time.perf_counter()
    out = self.model.generate(requests, **kwargs)
    self.seconds += time.perf_counter() - start
    self.steps += max(r.length - len(r.forced) for r in requests)
    return out


def build(size: str, rows: int, windows: int):
  import jax  # pylint: disable=g-import-not-at-top
  extra = [t5x_configs.gin_path("models/tiny.gin")] if size == "tiny" else []
  models = {}
  for i, s in enumerate(STAGES):
    parsed = t5x_model.parse_stage_gin(
        [t5x_configs.gin_path(f"infer/{s}.gin"), *extra])
    model = parsed["model"]
    params = model.get_initial_variables(
        jax.random.PRNGKey(i), {"decoder_input_tokens": (1, 8)})["params"]
    models[s] = _Timed(t5x_model.T5XStageModel(
        model, params, batch_size=rows * (windows if s == "fine" else 1),
        description=f"random {size}"))
  return models


def main(argv=None) -> None:
  p = argparse.ArgumentParser(
      description=__doc__.split("\n\n")[0],
      formatter_class=argparse.ArgumentDefaultsHelpFormatter)
  p.add_argument("--size", choices=("tiny", "paper"), default="tiny",
                 help="models/tiny.gin or the paper's 12-layer model")
  p.add_argument("--batch_size", type=int, nargs="+", default=[1],
                 help="prompts per batch (one JSON line each)")
  p.add_argument("--seconds", type=float, default=constants.CONTINUATION_SECONDS,
                 help="output length, prompt included")
  p.add_argument("--prompt_seconds", type=float,
                 default=constants.PROMPT_SECONDS, help="prompt length")
  p.add_argument("--lyra_dir", default="",
                 help="also time Lyra's decoder on the generated frames")
  args = p.parse_args(argv)
  import jax  # pylint: disable=g-import-not-at-top
  layout = vocabulary.PAPER_LAYOUT
  settings = chain.GenerationSettings(seconds=args.seconds,
                                      prompt_seconds=args.prompt_seconds)
  windows = settings.sampled_windows(chain.CONTINUATION)
  for b in args.batch_size:
    models = build(args.size, b, windows)
    g = chain.Generator(semantic_model=models["semantic"],
                        coarse_model=models["coarse"],
                        fine_model=models["fine"], layout=layout,
                        coarse_levels=constants.COARSE_LEVELS)
    rng = np.random.default_rng(0)
    p_frames = settings.prompt_frames
    prompts = [chain.Prompt(
        prompt_id=f"p{i}",
        semantic=np.repeat(rng.integers(0, 1024, p_frames), 2)[:p_frames],
        acoustic=rng.integers(0, 1024, (2 * p_frames, 12)))
        for i in range(b)]
    g.generate(prompts, mode="continuation", settings=settings)  # compile
    for m in models.values():
      m.seconds, m.steps = 0.0, 0
    start = time.perf_counter()
    samples = g.generate(prompts, mode="continuation", settings=settings)
    wall = time.perf_counter() - start
    audio = b * settings.seconds
    result = {
        "size": args.size, "batch_size": b, "seconds": settings.seconds,
        "prompt_seconds": settings.prompt_seconds,
        "device": str(jax.devices()[0].platform),
        "chain_wall_s": round(wall, 3),
        "audio_s_per_wall_s": round(audio / wall, 3),
        "stages": {s: {"wall_s": round(m.seconds, 3), "steps": m.steps,
                       "ms_per_step": round(1000 * m.seconds / max(1, m.steps),
                                            3),
                       "audio_s_per_wall_s": round(audio / m.seconds, 3)}
                   for s, m in models.items()},
    }
    if args.lyra_dir:
      from audiolm_t5x.pipelines.tokenizers import lyra  # pylint: disable=g-import-not-at-top
      codec = lyra.LyraSoundStream(args.lyra_dir, levels=24, pack=2)
      codes = np.asarray(samples[0].codes) % codec.codebook_size
      codec.decode(codes[:2])
      start = time.perf_counter()
      codec.decode(codes)
      dec = time.perf_counter() - start
      result["lyra_decode"] = {"wall_s": round(dec, 3),
                               "audio_s_per_wall_s": round(settings.seconds /
                                                           dec, 3)}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
  main()
