"""Fine-tuning sources: model.net.pretrained=FOLDER (a local Hugging Face folder) starts from its weights;
a missing or wrong model.init_from / model.net.pretrained is refused before any work (one line, exit 2)."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from core.errors import ConfigError
from tests.conftest import REPO, run_entry
from trainers.checkpoints import load_net_state_dict
from trainers.compose import compose_train
from trainers.run import check_config, train


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    """A small JSONL corpus tokenized with a 300-id BPE."""
    root = tmp_path_factory.mktemp("lm_init")
    text = root / "code.jsonl"
    text.write_text("".join(json.dumps({"text": f"def f{i}(x):\n    return x * {i % 5}\n" * 5}) + "\n" for i in range(60)))
    subprocess.run([sys.executable, "-m", "datamodules.tokenize", f"input={text}", f"output={root / 'tokens'}",
                    "vocab_size=300"], cwd=REPO, check=True, capture_output=True)
    return root / "tokens"


def hf_folder(path, vocab_size=300):
    """A tiny random Llama saved with save_pretrained: what a user downloads and copies to the machine."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(7)
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config)
    model.save_pretrained(path)
    return path, {k: v.clone() for k, v in model.state_dict().items()}


def test_a_pretrained_decoder_fine_tunes_in_train_mode(tmp_path):
    """from_pretrained returns eval mode (dropout off) and Lightning keeps each submodule's mode (issue 16.1)."""
    from trainers.nets.causal_lm import CausalLM

    folder, _ = hf_folder(tmp_path / "hf")
    net = CausalLM(pretrained=str(folder))
    assert [name for name, m in net.named_modules() if not m.training] == []


def test_finetune_starts_from_a_local_hugging_face_folder(tokens, tmp_path):
    folder, weights = hf_folder(tmp_path / "hf")
    cfg = compose_train(["+experiment=lm_llama_tiny", f"datamodule.data_dir={tokens}", "datamodule.seq_len=32",
                         f"model.net.pretrained={folder}", "model.optimizer.lr=0.0", "trainer.max_steps=2",
                         "trainer.limit_val_batches=1", "trainer.val_check_interval=2", "test_after_fit=false",
                         "model.generation.prompts=[]", "callbacks.progress_bar=null", "run_id=hf"], tmp_path / "out")
    check_config(cfg)
    summary = train(cfg)
    ckpt = sorted((tmp_path / "out" / "lm_llama_tiny" / "hf" / "checkpoints").glob("*.ckpt"))[0]
    state = load_net_state_dict(ckpt)
    assert summary["run_dir"] and state.keys() >= {f"hf.{k}" for k in weights if k != "lm_head.weight"}
    for key, value in weights.items():  # lr=0: the run's weights are the folder's, not a random init
        if f"hf.{key}" in state:
            torch.testing.assert_close(state[f"hf.{key}"], value, rtol=0, atol=0)


BAD = {
    "init_from_missing": ("model.init_from={tmp}/nowhere", "no such directory"),
    "init_from_not_lm": ("model.init_from={tmp}/cls_run", "is a classification run, not a language_modeling one"),
    "pretrained_missing": ("model.net.pretrained={tmp}/nowhere", "no such directory"),
    "pretrained_no_config": ("model.net.pretrained={tmp}/empty", "no readable config.json"),
    "pretrained_no_weights": ("model.net.pretrained={tmp}/noweights", "no weights there"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_fine_tuning_sources_are_refused_by_the_config_check(case, tmp_path):
    (tmp_path / "cls_run").mkdir()
    (tmp_path / "cls_run" / "run.json").write_text(json.dumps({"task": "classification"}))
    (tmp_path / "empty").mkdir()
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text(json.dumps({"model_type": "llama"}))
    override, message = BAD[case]
    cfg = compose_train(["+experiment=lm_llama_tiny", override.format(tmp=tmp_path)], tmp_path / "out")
    with pytest.raises(ConfigError, match=message):
        check_config(cfg)


def test_train_py_exits_2_with_one_line_before_any_work(tmp_path):
    proc = run_entry("train.py", "+experiment=lm_llama_tiny", f"model.init_from={tmp_path / 'nowhere'}",
                     f"paths.output_root={tmp_path / 'out'}", check=False)
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "model.init_from=" in lines[0] and "no such directory" in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr and not list((tmp_path / "out").rglob("run.json"))  # nothing ran


def test_validate_runs_the_token_checks_on_token_data(tokens, tmp_path):
    from datamodules.validate import check_datamodule
    from hydra.utils import instantiate

    bad = tmp_path / "bad.jsonl"  # two planted bad records beside good ones
    bad.write_text("".join(json.dumps({"text": f"x = {i}\n" * 30}) + "\n" for i in range(30))
                   + json.dumps({"text": ""}) + "\n" + json.dumps({"text": "\x00\x01\x02binary"}) + "\n")
    subprocess.run([sys.executable, "-m", "datamodules.tokenize", f"input={bad}", f"output={tmp_path / 'tokens'}",
                    f"tokenizer={tokens}"], cwd=REPO, check=True, capture_output=True)
    cfg = compose_train(["+experiment=lm_llama_tiny", f"datamodule.data_dir={tmp_path / 'tokens'}",
                         "datamodule.seq_len=16"], tmp_path / "out")
    datamodule = instantiate(cfg.datamodule)
    datamodule.setup("fit")
    report, path = check_datamodule(datamodule, cfg, tmp_path / "checks")
    written = json.loads(path.read_text())
    assert set(written["checks"]) == {"rejected_records"} and written["rejected"] == 2
    assert written["checks"]["rejected_records"]["status"] == "warn" and written["passed"] is True
    assert "2 of 32 records rejected" in (tmp_path / "checks" / "data_report.md").read_text()
