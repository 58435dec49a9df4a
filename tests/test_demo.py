"""README's main command: the demo runs the whole data path on its sample."""

import json

from audiolm_t5x import contract
from audiolm_t5x import demo


def test_demo_runs_end_to_end(tmp_path, lyra_dir, capsys):
  assert demo.main([f"--output_dir={tmp_path}", f"--lyra_dir={lyra_dir}",
                    "--k=16"]) == 0
  out = capsys.readouterr().out
  assert "SYNTHETIC" in out and f"from --lyra_dir: {lyra_dir}" in out
  # every speech task is printed, as the demo says
  for task in ("audiolm_semantic_v001", "audiolm_coarse_v001",
               "audiolm_fine_v001", "audiolm_semantic_prompt_v001"):
    assert f"-- {task}" in out
  assert "printed the 4 speech tasks" in out
  info = contract.DatasetInfo.load(str(tmp_path / "tokens"))
  assert info.splits["train-clean-100"]["records"] == 11
  assert info.splits["dev-clean"]["records"] == 3
  assert info.semantic["codebook_provenance"]["k"] == 16
  assert json.loads((tmp_path / "kmeans_logmel_16.npz.json").read_text())[
      "cluster_usage"]["k"] == 16
  # The demo ends by writing the data report (issue 15).
  assert "== 5. data report" in out
  report = tmp_path / "tokens" / "report"
  assert "| (all) | 14 |" in (report / "report.md").read_text()
  assert (report / "semantic.png").read_bytes()[:4] == b"\x89PNG"
