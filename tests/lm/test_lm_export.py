"""LM export: KVDecoder as TorchScript + torch.export (dynamic B, T, P) with parity on validation logits and on
greedy tokens from fixed prompts; the Hugging Face folder (format=hf) loads in transformers with the same logits
(Llama run; GPT-2 net) and train.py's model.net.pretrained reads it back."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from core.export_dir import ExportDir
from core.rundir import RunDir
from serving.export.exporter import export_run
from serving.export.hf_format import export_hf, save_folder
from serving.export.run_loading import build_net, load_run_config, resolve_checkpoint
from tests.exported_runs import copy_run
from trainers.nets.causal_lm import CausalLM
from trainers.nets.kv_decoder import KVDecoder, empty_past


@pytest.fixture(scope="module")
def lm_export(tiny_lm_run: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A private copy of the tiny LM run, exported once (both targets, parity on 2 validation batches)."""
    run_dir = copy_run(tiny_lm_run, tmp_path_factory.mktemp("lm_export"))
    return run_dir, export_run(run_dir, parity_batches=2, version="1.0")


def eager(run_dir: Path) -> CausalLM:
    """The run's eager net from its best checkpoint."""
    return build_net(load_run_config(run_dir), resolve_checkpoint(run_dir, "best"))


def test_both_targets_pass_logit_and_greedy_parity_and_decode_with_the_cache(lm_export):
    run_dir, report = lm_export
    assert report["status"] == "ok" and report["task"] == "language_modeling"
    assert report["checkpoint"] == str(resolve_checkpoint(run_dir, "best")) and report["checkpoint_choice"].startswith("best")
    for target in ("torchscript", "torch_export"):
        parity = report["targets"][target]["parity"]
        assert report["targets"][target]["status"] == "exported" and parity["passed"]
        assert parity["max_abs_diff"] <= 1e-4 and parity["greedy_identical"] and parity["greedy_prompts"] == 4
    assert report["targets"]["torchscript"]["method"] == "script"
    export = ExportDir(run_dir / "export")
    meta = json.loads(export.metadata_path.read_text())
    assert meta["task"] == "language_modeling" and meta["decoder"]["num_layers"] == 2
    assert meta["decoder"]["num_kv_heads"] == 2 and meta["decoder"]["eos_token_id"] == 0
    assert export.tokenizer_file.read_bytes() == RunDir(run_dir).tokenizer_file.read_bytes()
    # the files alone (no project code needed to call them), at B = 1, prefill P = 0, then T = 1 decode steps
    net = eager(run_dir)
    ids = torch.tensor([[5, 7, 9, 11, 13]])
    with torch.no_grad():
        reference = net(ids)
        for module in (torch.jit.load(str(export.scripted_model_path)), torch.export.load(str(export.program_path)).module()):
            logits, past = module(ids[:, :3], torch.ones(1, 3, dtype=torch.long), empty_past(meta["decoder"], 1))
            for t in (3, 4):
                step, past = module(ids[:, t:t + 1], torch.ones(1, t + 1, dtype=torch.long), past)
                logits = torch.cat((logits, step), dim=1)
            assert (logits - reference).abs().max() < 1e-4 and past.shape[4] == 5


def test_hf_folder_loads_in_transformers_and_as_pretrained(lm_export, tmp_path):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, _ = lm_export
    done = export_hf(run_dir, parity_batches=1)
    folder = Path(done["path"])
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= set(done["files"])
    ids = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6]])
    net = eager(run_dir)
    with torch.no_grad():
        reference = net(ids)
        hf = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
        assert (hf(input_ids=ids).logits - reference).abs().max() < 1e-5
        back = CausalLM(pretrained=str(folder)).eval()  # what train.py model.net.pretrained=FOLDER builds
        assert (back(ids) - reference).abs().max() < 1e-5
    text = "def f3(x):\n    return x + 3\n"
    tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    assert tok(text)["input_ids"] == Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids
    assert tok.eos_token == "<|endoftext|>" and hf.config.eos_token_id == 0

    gpt2 = CausalLM("gpt2", {"n_embd": 32, "n_layer": 2, "n_head": 4}, vocab_size=300, max_seq_len=32, seed=0).eval()
    save_folder(gpt2, folder / "tokenizer.json", 0, 32, tmp_path / "gpt2")
    with torch.no_grad():
        loaded = AutoModelForCausalLM.from_pretrained(str(tmp_path / "gpt2"), local_files_only=True).eval()
        assert (loaded(input_ids=ids).logits - gpt2(ids)).abs().max() < 1e-5
        assert (CausalLM(pretrained=str(tmp_path / "gpt2")).eval()(ids) - gpt2(ids)).abs().max() < 1e-5
    # a KVDecoder over the reloaded GPT-2 still matches (the decoder reads whatever weights the folder held)
    assert (KVDecoder(loaded_net := CausalLM(pretrained=str(tmp_path / "gpt2")).eval())(ids, torch.ones_like(ids),
            empty_past(KVDecoder(loaded_net).meta, 1))[0] - gpt2(ids)).abs().max() < 1e-5


def test_archive_carries_decoder_metadata_tokenizer_and_runtime_and_generates_greedily(lm_export, tmp_path):
    import zipfile

    from serving.export.tasks.language_modeling import greedy_full
    from serving.torchserve.inprocess import InProcessWorker
    from tokenizers import Tokenizer

    run_dir, report = lm_export
    mar = run_dir / "export" / report["archive"]["path"]
    names = set(zipfile.ZipFile(mar).namelist())
    assert {"model.pt", "metadata.json", "tokenizer.json", "text_generator.py", "runtime/lm_generate.py"} <= names
    assert not any(n.startswith(("trainers/", "serving/", "core/")) for n in names)  # no project code but runtime/
    worker = InProcessWorker(mar, tmp_path, batch_size=4)  # TorchServe's own worker code on the archive
    prompt = "def f1(x):\n"
    code, (answer,) = worker.predict([(json.dumps({"prompt": prompt, "max_new_tokens": 6,
                                                   "temperature": 0}).encode(), "application/json")])
    ids = Tokenizer.from_file(str(run_dir / "export" / "tokenizer.json")).encode(prompt).ids
    with torch.no_grad():
        expected = greedy_full(eager(run_dir), ids, 6)
    eos = report["decoder"]["eos_token_id"]
    expected = expected[:expected.index(eos)] if eos in expected else expected
    assert code == 200 and answer.status == 200 and answer.json["tokens"] == expected
