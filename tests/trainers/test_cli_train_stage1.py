"""``syntriever train-stage1``: a YAML config with flags overriding it, and the help text."""

from __future__ import annotations

from sentence_transformers import SentenceTransformer

from syntriever_hf.cli.main import main


def test_train_stage1_from_config_with_flag_overrides(tiny_model_path, tiny_beir_dir, tmp_path):
    output = tmp_path / "model"
    config = tmp_path / "stage1.yaml"
    config.write_text(
        f"data: {tiny_beir_dir}\n"
        f"model_name_or_path: {tiny_model_path}\n"
        f"output_dir: {output}\n"
        "preset: gold\n"
        "dev_queries: 0\n"
        "query_prompt: 'query: '\n"
        "document_prompt: ''\n"
        "use_cpu: true\n"
        "per_device_train_batch_size: 4\n"
        "max_steps: 50\n"
        "eval_strategy: 'no'\n"
        "save_strategy: 'no'\n"
        "load_best_model_at_end: false\n"
        "report_to: none\n"
        "evaluate_split: test\n",
        encoding="utf-8",
    )
    assert main(["train-stage1", "--config", str(config), "--max_steps", "2", "--disable_tqdm", "true"]) == 0
    card = (output / "README.md").read_text(encoding="utf-8")
    assert "| max_steps | 2 |" in card  # the flag overrode the file's 50
    assert "`SyntrieverLoss` with the recipe `gold`" in card
    assert f"| {tiny_beir_dir.name} | test | nDCG@10 |" in card  # evaluate_split: MTEB scores of the saved model
    prompts = SentenceTransformer(str(output), device="cpu").prompts
    assert prompts["query"] == "query: " and not prompts.get("document")  # '' means no document prompt
    assert "| Document prompt | (none) |" in card


def test_train_stage1_help_lists_every_argument(capsys):
    assert main(["train-stage1", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--config" in text and "--data" in text and "--gather_across_devices" in text and "--bf16" in text
