"""Token-quality report: figures from the job's rows, the paper's beside them.

Reads ``rows.jsonl`` and ``dead_letters.jsonl`` written by the token-quality
job and writes

* ``token_quality.json``: every figure, the counts it rests on, the settings,
  the command, the paper's figures, the per-file failures;
* ``token_quality.md``: the same as tables;
* ``abx.png``: ABX error (within / across) against K, continuous features as
  horizontal lines, the paper's w2v-BERT figures as dotted lines;
* ``abx_layers.png``: ABX error against the layer, where several ``--semantic``
  settings differ only in ``layer=`` (e.g. ``hubert:layer=3``, ``layer=6``);
* ``reconstruction.png``: ViSQOL, PESQ and STOI against bitrate, with the
  paper's SoundStream ViSQOL points.

Timing: CPU seconds (``time.process_time``, all threads of the process
summed, i.e. one-core equivalent) per hour of audio, per metric.
"""

from __future__ import annotations

import collections
import json
import math
import posixpath
from typing import Optional

import numpy as np

from audiolm_t5x import constants
from audiolm_t5x.pipelines.evaluation import reconstruction

ESPEAK_WARNING = (
    "The 'espeak' set is synthetic espeak-ng speech (one accent, formant "
    "voices): its ABX errors are far lower than on LibriSpeech and are NOT "
    "comparable with the paper's figures.")


def paper_figures() -> dict:
  return {
      "citation": constants.PAPER_CITATION,
      "data": "LibriSpeech dev-clean",
      "abx_percent": {
          "semantic (w2v-BERT XL layer 7, k-means K=1024)": {
              "within": constants.PAPER_ABX_SEMANTIC[0],
              "across": constants.PAPER_ABX_SEMANTIC[1]},
          "acoustic (SoundStream, 6 kbps)": {
              "within": constants.PAPER_ABX_ACOUSTIC_6KBPS[0],
              "across": constants.PAPER_ABX_ACOUSTIC_6KBPS[1]},
      },
      "visqol": {
          "semantic (w2v-BERT tokens)": constants.PAPER_VISQOL_SEMANTIC,
          **{f"acoustic (SoundStream, {k:g} kbps)": v
             for k, v in sorted(constants.PAPER_VISQOL_ACOUSTIC.items())},
      },
  }


def _read_jsonl(path: str) -> list[dict]:
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  if not FileSystems.exists(path):
    return []
  with FileSystems.open(path) as f:
    return [json.loads(l) for l in f.read().decode("utf-8").splitlines() if l]


def _pct(x: Optional[float]) -> Optional[float]:
  return None if x is None else 100.0 * x


def aggregate(rows: list[dict], dead: list[dict]) -> dict:
  """Figures from rows: ABX rows as they are, reconstruction means per codec."""
  abx_rows = sorted(
      (r for r in rows if r["kind"] == "abx"),
      key=lambda r: (r["set"], r["semantic"], r["features"], r["k"] or 0,
                     r["distance"]))
  abx_out = []
  for r in abx_rows:
    abx_out.append({
        "set": r["set"], "semantic": r["semantic"], "features": r["features"],
        "k": r["k"], "k_requested": r["k_requested"],
        "fit_frames": r.get("fit_frames"), "distance": r["distance"],
        "within_percent": _pct(r["within"]),
        "across_percent": _pct(r["across"]),
        "num_items": r["num_items"], "num_skipped": r["num_skipped"],
        "skipped_reasons": r["skipped_reasons"],
        "within_triplets": r["within_triplets"],
        "across_triplets": r["across_triplets"],
        "within_phone_pairs": r["within_phone_pairs"],
        "across_phone_pairs": r["across_phone_pairs"],
        "k_capped": (r["k_requested"] is not None
                     and r["k"] < r["k_requested"]),
        "cpu_seconds": r["cpu_seconds"],
    })
  by_codec = collections.defaultdict(list)
  for r in rows:
    if r["kind"] == "reconstruction":
      by_codec[r["setting"]].append(r)
  recon = []
  for setting, rs in sorted(by_codec.items(),
                            key=lambda kv: (kv[1][0].get("bitrate_kbps", 0),
                                            kv[0])):
    entry = {"setting": setting, "backend": rs[0]["backend"],
             "levels": rs[0].get("levels"),
             "codebook_size": rs[0].get("codebook_size"),
             "bitrate_kbps": rs[0].get("bitrate_kbps"), "files": len(rs),
             "audio_seconds": float(sum(r["audio_seconds"] for r in rs)),
             "lags_samples": sorted({r["lag_samples"] for r in rs})}
    for m in reconstruction.METRICS:
      vals = [r[m] for r in rs if m in r]
      if vals:
        entry[m] = float(np.mean(vals))
        entry[m + "_std"] = float(np.std(vals))
    recon.append(entry)
  # CPU seconds per audio hour, per metric.
  timing = collections.defaultdict(lambda: [0.0, 0.0])
  for r in rows:
    if r["kind"] == "timing":
      timing[r["metric"]][0] += r["cpu_seconds"]
      timing[r["metric"]][1] += r["audio_seconds"]
    elif r["kind"] == "reconstruction":
      for m, s in r["seconds"].items():
        key = f"{m} ({r['setting']})" if m in ("encode", "decode") else m
        timing[key][0] += s
        timing[key][1] += r["audio_seconds"]
  set_seconds = collections.defaultdict(float)
  first_sem = None
  for r in rows:
    if r["kind"] == "timing" and r.get("role") == "abx":
      first_sem = first_sem or r["metric"]
      if r["metric"] == first_sem:
        set_seconds[r["set"]] += r["audio_seconds"]
  for r in abx_rows:
    key = ("ABX continuous" if r["features"] == "continuous" else
           f"ABX tokens, {r['distance']}")
    timing[key][0] += r["cpu_seconds"]
    timing[key][1] += set_seconds.get(r["set"], 0.0)
  timing_out = {
      k: {"cpu_seconds": v[0], "audio_seconds": v[1],
          "cpu_seconds_per_audio_hour": (3600.0 * v[0] / v[1]
                                         if v[1] else None)}
      for k, v in sorted(timing.items())}
  return {"abx": abx_out, "reconstruction": recon, "timing": timing_out,
          "abx_set_audio_seconds": dict(set_seconds),
          "failures": dead, "num_failures": len(dead),
          "semantic_reconstruction": reconstruction.SEMANTIC_NOTE,
          "paper": paper_figures()}


def _f(x, fmt="{:.2f}") -> str:
  return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) \
      else fmt.format(x)


def markdown(fig: dict) -> str:
  lines = ["# Token and codec quality", ""]
  if fig.get("command"):
    lines += [f"Command: `{fig['command']}`", ""]
  paper = fig["paper"]
  if fig["abx"]:
    lines += ["## ABX error rate (%)", ""]
    if any(r["set"] == "espeak" for r in fig["abx"]):
      lines += [f"> {ESPEAK_WARNING}", ""]
    lines += ["| set | semantic | features | K (asked) | distance | within | "
              "across | items (skipped) | triplets within / across |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in fig["abx"]:
      capped = ", capped" if r["k_capped"] else ""
      k = ("-" if r["k"] is None else
           f"{r['k']} ({r['k_requested']}{capped})")
      lines.append(
          f"| {r['set']} | {r['semantic']} | {r['features']} | {k} | "
          f"{r['distance']} | {_f(r['within_percent'])} | "
          f"{_f(r['across_percent'])} | {r['num_items']} ({r['num_skipped']})"
          f" | {r['within_triplets']} / {r['across_triplets']} |")
    for name, v in paper["abx_percent"].items():
      lines.append(f"| paper: {paper['data']} | {name} | tokens | - | - | "
                   f"{v['within']} | {v['across']} | - | - |")
    lines += ["", f"Paper: {paper['citation']}.", ""]
  if fig["reconstruction"]:
    lines += ["## Reconstruction (mean over files, std in brackets)", "",
              "| setting | levels x codes | kbps | ViSQOL (speech) | PESQ-WB | "
              "STOI | files | audio s |", "|---|---|---|---|---|---|---|---|"]
    for r in fig["reconstruction"]:
      cells = []
      for m in reconstruction.METRICS:
        cells.append(f"{_f(r.get(m))} ({_f(r.get(m + '_std'))})"
                     if m in r else "-")
      lines.append(
          f"| {r['setting']} | {r['levels']} x {r['codebook_size']} | "
          f"{_f(r['bitrate_kbps'], '{:.1f}')} | {' | '.join(cells)} | "
          f"{r['files']} | {r['audio_seconds']:.1f} |")
    for name, v in paper["visqol"].items():
      lines.append(f"| paper: {name} | - | - | {v} | - | - | - | - |")
    lines += ["", f"Semantic tokens: {fig['semantic_reconstruction']}", ""]
  if fig["timing"]:
    lines += ["## CPU seconds per hour of audio (one-core equivalent)", "",
              "| step | CPU s per audio hour | audio s measured |",
              "|---|---|---|"]
    for k, v in fig["timing"].items():
      lines.append(f"| {k} | {_f(v['cpu_seconds_per_audio_hour'], '{:.0f}')}"
                   f" | {v['audio_seconds']:.1f} |")
    lines.append("")
  lines += [f"## Failures: {fig['num_failures']}", ""]
  for d in fig["failures"][:50]:
    lines.append(f"- `{d['path']}` ({d.get('step', '')}): {d['reason']}")
  return "\n".join(lines) + "\n"


def plot_abx(fig: dict, path: str) -> bool:
  rows = [r for r in fig["abx"]]
  if not rows:
    return False
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  f, axes = plt.subplots(1, 2, figsize=(14, 4), sharey=True)
  groups = collections.defaultdict(list)
  for r in rows:
    groups[(r["set"], r["semantic"], r["features"], r["distance"])].append(r)
  ks_plotted = []
  for ax, side in zip(axes, ("within", "across")):
    for (s, sem, feat, dist), rs in sorted(groups.items()):
      label = f"{s}, {sem}, {dist}"
      if feat == "continuous":
        v = rs[0][side + "_percent"]
        if v is not None:
          ax.axhline(v, linestyle="--", linewidth=1,
                     label=label + " (continuous)")
        continue
      pts = sorted((r["k"], r[side + "_percent"]) for r in rs
                   if r[side + "_percent"] is not None)
      if pts:
        ax.plot([k for k, _ in pts], [v for _, v in pts], marker="o",
                label=label)
        ks_plotted.extend(k for k, _ in pts)
    p = fig["paper"]["abx_percent"]
    for name, v in p.items():
      ax.axhline(v[side], linestyle=":", color="k" if "semantic" in name
                 else "gray", label=f"paper ({fig['paper']['data']}): {name}")
    if ks_plotted:
      ax.set_xscale("log", base=2)
    ax.set_xlabel("K (k-means codebook size)")
    ax.set_title(f"ABX {side} speaker")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("error rate (%)")
  axes[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
  f.suptitle("ABX error vs K (espeak set: synthetic, not comparable with the "
             "paper)", fontsize=9)
  f.tight_layout()
  _save(f, path)
  plt.close(f)
  return True


def _layer_of(label: str) -> tuple[str, Optional[int]]:
  """``"hubert:layer=6,model=/m"`` -> ``("hubert:model=/m", 6)``."""
  name, _, rest = label.partition(":")
  opts, layer = [], None
  for part in [p for p in rest.split(",") if p]:
    key, _, value = part.partition("=")
    if key == "layer" and value.lstrip("-").isdigit():
      layer = int(value)
    else:
      opts.append(part)
  return (f"{name}:{','.join(opts)}" if opts else name), layer


def abx_by_layer(fig: dict) -> dict:
  """(set, backend without layer, features, K, distance) -> [(layer, row)].

  Only groups with two or more layers are kept.
  """
  groups = collections.defaultdict(list)
  for r in fig["abx"]:
    backend, layer = _layer_of(r["semantic"])
    if layer is not None:
      groups[(r["set"], backend, r["features"], r["k"], r["distance"])
             ].append((layer, r))
  return {k: sorted(v, key=lambda lr: lr[0]) for k, v in groups.items()
          if len({l for l, _ in v}) > 1}


def plot_abx_layers(fig: dict, path: str) -> bool:
  groups = abx_by_layer(fig)
  if not groups:
    return False
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  f, axes = plt.subplots(1, 2, figsize=(14, 4), sharey=True)
  for ax, side in zip(axes, ("within", "across")):
    for (s, backend, feat, k, dist), rows in sorted(
        groups.items(), key=lambda kv: str(kv[0])):
      pts = [(l, r[side + "_percent"]) for l, r in rows
             if r[side + "_percent"] is not None]
      if pts:
        what = "continuous" if feat == "continuous" else f"K={k}"
        ax.plot([l for l, _ in pts], [v for _, v in pts], marker="o",
                label=f"{s}, {backend}, {what}, {dist}")
    for name, v in fig["paper"]["abx_percent"].items():
      ax.axhline(v[side], linestyle=":", color="k" if "semantic" in name
                 else "gray", label=f"paper ({fig['paper']['data']}): {name}")
    ax.set_xlabel("layer")
    ax.set_title(f"ABX {side} speaker")
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("error rate (%)")
  axes[1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0))
  f.tight_layout()
  _save(f, path)
  plt.close(f)
  return True


def plot_reconstruction(fig: dict, path: str) -> bool:
  rows = fig["reconstruction"]
  if not rows:
    return False
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top

  metrics = [m for m in reconstruction.METRICS if any(m in r for r in rows)]
  f, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.6))
  axes = np.atleast_1d(axes)
  for ax, m in zip(axes, metrics):
    by_backend = collections.defaultdict(list)
    for r in rows:
      if m in r:
        by_backend[(r["backend"], "pack" in r["setting"])].append(r)
    for (backend, packed), rs in sorted(by_backend.items()):
      rs = sorted(rs, key=lambda r: r["bitrate_kbps"])
      ax.errorbar([r["bitrate_kbps"] for r in rs], [r[m] for r in rs],
                  yerr=[r[m + "_std"] for r in rs], marker="o", capsize=3,
                  linestyle="-" if not packed else "none",
                  label=f"{backend}{' packed' if packed else ''} (ours)")
      for r in rs:
        if packed:
          ax.annotate(r["setting"].split(":", 1)[-1], (r["bitrate_kbps"], r[m]),
                      fontsize=6)
    if m == "visqol":
      pts = sorted(constants.PAPER_VISQOL_ACOUSTIC.items())
      ax.plot([k for k, _ in pts], [v for _, v in pts], "k*", markersize=10,
              label="paper SoundStream (LibriSpeech)")
    ax.set_xlabel("bitrate (kbps)")
    ax.set_title({"visqol": "ViSQOL (speech)", "pesq": "PESQ wide-band",
                  "stoi": "STOI"}[m])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
  f.tight_layout()
  _save(f, path)
  plt.close(f)
  return True


def _save(figure, path: str) -> None:
  import io  # pylint: disable=g-import-not-at-top
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  buf = io.BytesIO()
  figure.savefig(buf, format="png", dpi=120)
  with FileSystems.create(path) as f:
    f.write(buf.getvalue())


def write_report(output_dir: str, *, rows_path: str, dead_path: str,
                 command: str = "", settings: Optional[dict] = None,
                 counters: Optional[dict] = None) -> dict:
  """Aggregates the job's rows and writes JSON, markdown and PNG plots."""
  from apache_beam.io.filesystems import FileSystems  # pylint: disable=g-import-not-at-top

  fig = aggregate(_read_jsonl(rows_path), _read_jsonl(dead_path))
  fig.update(command=command, settings=settings or {},
             counters=counters or {})
  fig["plots"] = {}
  for name, fn in (("abx", plot_abx), ("abx_layers", plot_abx_layers),
                   ("reconstruction", plot_reconstruction)):
    path = posixpath.join(output_dir, name + ".png")
    if fn(fig, path):
      fig["plots"][name] = path
  with FileSystems.create(posixpath.join(output_dir,
                                         "token_quality.json")) as f:
    f.write(json.dumps(fig, indent=2, sort_keys=True, default=str).encode())
  with FileSystems.create(posixpath.join(output_dir, "token_quality.md")) as f:
    f.write(markdown(fig).encode())
  return fig


def summary_text(fig: dict) -> str:
  out = []
  for r in fig["abx"]:
    k = "continuous" if r["k"] is None else f"K={r['k']}"
    out.append(f"ABX {r['set']} {r['semantic']} {k} {r['distance']}: within "
               f"{_f(r['within_percent'])}% across {_f(r['across_percent'])}%"
               f" ({r['num_items']} items)")
  for r in fig["reconstruction"]:
    out.append(f"{r['setting']} ({_f(r['bitrate_kbps'], '{:.1f}')} kbps): "
               + ", ".join(f"{m} {_f(r.get(m))}" for m in
                           reconstruction.METRICS if m in r)
               + f" ({r['files']} files)")
  out.append(f"failures: {fig['num_failures']}")
  return "\n".join(out)
