"""Draws the data report: PNG plots and ``report.md`` from ``stats.json``.

``stats.json`` is what :mod:`audiolm_t5x.pipelines.data_report` computes; this
module only draws it (matplotlib's Agg backend, no display needed) and writes
through Beam's ``FileSystems``, so the output folder may be local or
``gs://``.

Files written into the output folder:

================== ==========================================================
``report.md``      tables of every figure, the plots linked beside it
``durations.png``  histogram of record durations per split
``semantic.png``   semantic cluster usage, ranked, per split
``acoustic.png``   per acoustic level: perplexity and ranked code usage
``dead_letters.png`` dead letters by step
================== ==========================================================
"""

from __future__ import annotations

import io
import posixpath
from typing import Any, Mapping

from apache_beam.io.filesystems import FileSystems
import numpy as np

from audiolm_t5x.pipelines.data_report import ALL

REPORT_FILENAME = "report.md"
PLOTS = ("durations.png", "semantic.png", "acoustic.png", "dead_letters.png")
TOP_REASONS = 20


def _plt():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _save(fig, path: str) -> str:
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
  _plt().close(fig)
  with FileSystems.create(path) as f:
    f.write(buf.getvalue())
  return path


def _splits(stats: Mapping[str, Any]) -> list:
  return [s for s in stats["splits"] if s != ALL]


def plot_durations(stats: Mapping[str, Any], path: str) -> str:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(8, 4))
  width = stats["duration_bin_seconds"]
  for split in _splits(stats):
    h = stats["splits"][split]["duration_histogram"]
    ax.step(h["edges"], h["counts"], where="post", label=split)
  last = stats["splits"][ALL]["duration_histogram"]["edges"][-1]
  ax.axvline(last, color="gray", linestyle=":", linewidth=1)
  ax.set_xlabel(f"record duration (s; bins of {width:g} s, the last bin "
                f"holds >= {last:g} s)")
  ax.set_ylabel("records")
  ax.set_title("Record durations")
  ax.legend()
  return _save(fig, path)


def _ranked(counts) -> np.ndarray:
  c = np.sort(np.asarray(counts, np.float64))[::-1]
  total = c.sum()
  return c / total if total else c


def plot_semantic(stats: Mapping[str, Any], path: str) -> str:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(8, 4))
  for split in [*_splits(stats), ALL]:
    u = stats["splits"][split]["semantic_usage"]
    ranked = _ranked(u["counts"])
    ax.plot(np.arange(1, ranked.size + 1), np.where(ranked > 0, ranked,
                                                     np.nan),
            label=f"{split}: perplexity {u['perplexity']:.1f}, "
            f"dead {u['dead']}/{u['size']}")
  ax.set_yscale("log")
  ax.set_xlabel("cluster rank")
  ax.set_ylabel("share of semantic tokens")
  ax.set_title("Semantic cluster usage (ranked)")
  ax.legend(fontsize=8)
  return _save(fig, path)


def plot_acoustic(stats: Mapping[str, Any], path: str) -> str:
  plt = _plt()
  levels = stats["splits"][ALL]["acoustic_usage"]
  fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
  ax1.bar([u["level"] for u in levels], [u["perplexity"] for u in levels])
  ax1.set_xticks([u["level"] for u in levels])
  if levels:
    ax1.axhline(levels[0]["size"], color="gray", linestyle=":",
                label=f"N = {levels[0]['size']} (uniform use)")
    ax1.legend(fontsize=8)
  ax1.set_xlabel("acoustic level (0-based)")
  ax1.set_ylabel("perplexity of code usage")
  ax1.set_title("Code usage per level (all splits)")
  cmap = plt.get_cmap("viridis")
  for i, u in enumerate(levels):
    ranked = _ranked(u["counts"])
    ax2.plot(np.arange(1, ranked.size + 1),
             np.where(ranked > 0, ranked, np.nan),
             color=cmap(i / max(1, len(levels) - 1)),
             label=f"level {u['level']}")
  ax2.set_yscale("log")
  ax2.set_xlabel("code rank")
  ax2.set_ylabel("share of the level's codes")
  ax2.set_title("Ranked code usage per level")
  if len(levels) <= 12:
    ax2.legend(fontsize=7, ncol=2)
  fig.tight_layout()
  return _save(fig, path)


def plot_dead_letters(stats: Mapping[str, Any], path: str) -> str:
  plt = _plt()
  fig, ax = plt.subplots(figsize=(6, 3))
  by_step = stats["dead_letters_by_step"]
  if by_step:
    ax.barh(list(by_step), list(by_step.values()))
    ax.set_xlabel("inputs dead-lettered")
  else:
    ax.text(0.5, 0.5, "no dead letters", ha="center", va="center")
    ax.set_axis_off()
  ax.set_title("Dead letters by step")
  return _save(fig, path)


def _table(header, rows) -> list:
  out = ["| " + " | ".join(header) + " |",
         "|" + "|".join("---" for _ in header) + "|"]
  out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
  return out


def markdown(stats: Mapping[str, Any]) -> str:
  """The report's text: every figure in tables, plots linked."""
  sem, ac = stats["tokenizers"]["semantic"], stats["tokenizers"]["acoustic"]
  lay = stats["layout"]
  lines = [
      "# Data report", "",
      f"Dataset: `{stats['data_dir']}` (splits read: "
      f"{', '.join(stats['splits_read'])}).", "",
      f"Semantic tokenizer: {sem.get('name')} (K = {lay['K']}, "
      f"{lay['semantic_rate_hz']} Hz). Acoustic tokenizer: {ac.get('name')} "
      f"(Q = {lay['Q']} levels x N = {lay['N']} codes, "
      f"{lay['acoustic_rate_hz']} Hz).", "",
      "## Splits", "",
  ]
  keys = [*_splits(stats), ALL]
  lines += _table(
      ["split", "records", "hours", "speakers", "chapters", "semantic tokens",
       "after dedup", "dedup ratio", "semantic tok/s", "dedup tok/s",
       "acoustic frames/s", "acoustic ids/s"],
      [[k, s["records"], f"{s['hours']:.4f}", s["speakers"], s["chapters"],
        s["semantic_tokens"], s["semantic_dedup_tokens"],
        f"{s['dedup_ratio']:.3f}", f"{s['semantic_tokens_per_second']:.2f}",
        f"{s['semantic_dedup_tokens_per_second']:.2f}",
        f"{s['acoustic_frames_per_second']:.2f}",
        f"{s['acoustic_tokens_per_second']:.1f}"]
       for k, s in ((k, stats["splits"][k]) for k in keys)])
  lines += [
      "", "Dedup ratio: semantic tokens kept by the tasks' deduplication of "
      "consecutive repeats (`tasks.preprocessors.dedup_consecutive_example`, "
      "over whole records) divided by all semantic tokens. Tokens per second "
      "are per second of audio; acoustic ids = frames x Q.", "",
      "## Record durations", "", "![durations](durations.png)", ""]
  lines += _table(
      ["split", "shortest bin with records (s)", "longest bin with records (s)"],
      [[k, *_bin_range(stats["splits"][k]["duration_histogram"])]
       for k in keys])
  lines += ["", "## Semantic cluster usage", "", "![semantic](semantic.png)",
            ""]
  lines += _table(
      ["split", "K", "used", "dead", "perplexity", "largest share"],
      [[k, u["size"], u["used"], u["dead"], f"{u['perplexity']:.2f}",
        f"{u['max_share']:.3f}"]
       for k, u in ((k, stats["splits"][k]["semantic_usage"]) for k in keys)])
  lines += ["", "Perplexity: exp of the entropy (natural log) of the usage "
            "distribution; K for uniform use, 1 for a single cluster.", "",
            "## Acoustic code usage per level (all splits)", "",
            "![acoustic](acoustic.png)", ""]
  lines += _table(
      ["level", "N", "used", "dead", "perplexity", "largest share"],
      [[u["level"], u["size"], u["used"], u["dead"], f"{u['perplexity']:.2f}",
        f"{u['max_share']:.3f}"]
       for u in stats["splits"][ALL]["acoustic_usage"]])
  lines += ["", "## Dead letters", "", "![dead letters](dead_letters.png)",
            ""]
  dead = stats["dead_letters"]
  if not dead:
    lines.append("None: every input became a record.")
  else:
    lines += _table(["step", "inputs"],
                    sorted(stats["dead_letters_by_step"].items()))
    lines += ["", f"Most frequent reasons (top {TOP_REASONS} of "
              f"{len(dead)}):", ""]
    lines += _table(["count", "split", "step", "reason"],
                    [[d["count"], d["split"], d["step"],
                      d["reason"].replace("|", "\\|")]
                     for d in dead[:TOP_REASONS]])
  if stats.get("command"):
    lines += ["", f"Written by `{stats['command']}`; all figures are in "
              "`stats.json` beside this file."]
  return "\n".join(lines) + "\n"


def _bin_range(hist: Mapping[str, Any]) -> list:
  nz = [i for i, c in enumerate(hist["counts"]) if c]
  if not nz:
    return ["-", "-"]
  edges = hist["edges"]
  width = edges[1] - edges[0] if len(edges) > 1 else 0.0

  def label(i):
    if i == len(edges) - 1:
      return f">= {edges[i]:g}"
    return f"{edges[i]:g}-{edges[i] + width:g}"
  return [label(nz[0]), label(nz[-1])]


def render(stats: Mapping[str, Any], output_dir: str) -> list:
  """Writes the plots and ``report.md``; returns their paths."""
  draw = {"durations.png": plot_durations, "semantic.png": plot_semantic,
          "acoustic.png": plot_acoustic, "dead_letters.png": plot_dead_letters}
  paths = [draw[name](stats, posixpath.join(output_dir, name))
           for name in PLOTS]
  report = posixpath.join(output_dir, REPORT_FILENAME)
  with FileSystems.create(report) as f:
    f.write(markdown(stats).encode("utf-8"))
  return [report, *paths]
