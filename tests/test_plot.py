"""`python -m ernie.plot`: the loss plot of a run directory, titled with the run's config name."""
import json

import yaml

from ernie.plot import CONFIG_LINE, draw, plot_run, run_name


def _run(root, config_line=None):
    """A run directory as the trainer leaves it: log.jsonl (two stages, one held-out evaluation)
    and config.yaml, with or without the line naming the config file."""
    root.mkdir(parents=True)
    records = [{"step": 0, "heldout_loss/knowledge_masking": 9.0, "heldout_loss/capitalization": 0.7},
               {"step": 10, "stage": 1, "lr": 1e-3, "knowledge_masking/loss": 8.0},
               {"step": 20, "stage": 2, "lr": 1e-3, "knowledge_masking/loss": 7.0, "capitalization/loss": 0.6},
               {"step": 20, "stage": 2, "heldout_loss/knowledge_masking": 7.1, "heldout_loss/capitalization": 0.5}]
    (root / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    resolved = yaml.safe_dump({"data": "output/demo/shards", "output": str(root)}, sort_keys=False)
    (root / "config.yaml").write_text((f"{config_line}\n" if config_line else "") + resolved)
    return root


def test_the_title_names_the_config_the_run_was_started_with(tmp_path):
    run = _run(tmp_path / "demo" / "pretrain", CONFIG_LINE + "configs/pretrain/demo_en.yaml")
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == "output/demo/shards"  # a comment to YAML
    assert run_name(run) == "demo_en"
    assert draw(run).axes[0].get_title() == "ERNIE 2.0 pre-training: demo_en"
    assert plot_run(run).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_the_config_line_the_title_names_the_run_directory_and_its_parent(tmp_path):
    run = _run(tmp_path / "small_en" / "pretrain")
    assert run_name(run) == "small_en/pretrain"
    assert draw(run).axes[0].get_title() == "ERNIE 2.0 pre-training: small_en/pretrain"
    (run / "config.yaml").unlink()
    assert run_name(run) == "small_en/pretrain"
