"""score.py on a language-model export: prompt tables generate what runtime/lm_generate.generate gives for each
prompt alone (same per-record seed, any batch or shard), task=perplexity equals a direct computation with the
eager model, bad records are rejected with the handler's reasons, kill -9 + rerun scores each record once."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from runtime.handlers.text_generator import load_decoder, load_tokenizer
from runtime.lm_generate import DecoderShape, SamplingParams, generate
from serving.export import targets
from serving.export.exporter import export_run
from serving.export.run_loading import build_net, load_run_config, resolve_checkpoint
from core.errors import ConfigError
from serving.scoring.config import Columns, ScoreOptions, options_from_config
from serving.scoring.lm import GenerationSettingsError, record_seed
from serving.scoring.lm_options import GenerationOptions, PerplexityOptions
from serving.scoring.perplexity import windows
from serving.scoring.runner import score
from serving.scoring.writer import PlanMismatch, read_output, read_rejects
from tests.conftest import REPO, run_entry
from tests.exported_runs import copy_run

FAST = dict(num_workers=0, torch_threads=1, progress=False)
SAMPLED = GenerationOptions(max_new_tokens=6, temperature=0.9, top_k=40, top_p=0.95, seed=7)
BAD_PROMPTS = {"empty": ("", "empty_input"), "blank": ("   ", "empty_input"), "number": (42, "wrong_type"),
               "list": (["def"], "wrong_type"), "missing": (None, "missing_value"),
               "over_context": ("def f(x): return x\n" * 20, "too_long")}
BAD_TEXTS = {"empty": ("", "empty_input"), "number": (3.5, "wrong_type"), "missing": (None, "missing_value")}


@pytest.fixture(scope="module")
def lm_model(tiny_lm_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny LM run exported (TorchScript only, no archive): its export folder."""
    run_dir = copy_run(tiny_lm_run, tmp_path_factory.mktemp("lm_scoring"))
    export_run(run_dir, parity_batches=1, wanted=(targets.TORCHSCRIPT,), build_archive=False)
    return run_dir / "export"


def write_jsonl(path: Path, column: str, values: dict[str, object]) -> Path:
    """A JSONL table {"id", column} (a None value is written as JSON null)."""
    path.write_text("".join(json.dumps({"id": k, column: v}) + "\n" for k, v in values.items()))
    return path


def prompts(n: int) -> dict[str, str]:
    """n short code prompts of different lengths (left padding inside a batch)."""
    return {f"p{i:03d}": f"def f{i}(x):\n" + "    " * (i % 3) for i in range(n)}


def documents(n: int) -> dict[str, str]:
    """n texts from 1 line to many (the longest pass the 32-token context)."""
    return {f"d{i:03d}": "".join(f"def f{j}(x):\n    return x + {j % 7}\n" for j in range(1 + i % 8)) for i in range(n)}


def test_generation_equals_runtime_generate_per_prompt_in_any_batch_and_shard(lm_model, tmp_path):
    good = prompts(9)
    table = write_jsonl(tmp_path / "prompts.jsonl", "prompt", {**good, **{k: v for k, (v, _) in BAD_PROMPTS.items()}})
    common = dict(model=str(lm_model), input=str(table), columns=Columns(id="id"), generation=SAMPLED, **FAST)
    done = score(ScoreOptions(output=str(tmp_path / "a"), batch_size=4, chunk_size=5, format="jsonl", **common))
    rows = {r["id"]: r for r in read_output(tmp_path / "a")}
    assert sorted(rows) == sorted(good) and done["success"]["rejected"] == len(BAD_PROMPTS)
    rejects = {r["id"]: r for r in read_rejects(tmp_path / "a")}
    assert {k: r["code"] for k, r in rejects.items()} == {k: code for k, (_, code) in BAD_PROMPTS.items()}
    assert "context is 32" in rejects["over_context"]["reason"] and all(r["reason"] for r in rejects.values())

    decoder, tok = load_decoder(str(lm_model)), load_tokenizer(str(lm_model))
    shape = DecoderShape.from_metadata(json.loads((lm_model / "metadata.json").read_text())["decoder"])
    for record_id, prompt in good.items():  # each prompt alone, as one served request with the record's seed
        params = SamplingParams(max_new_tokens=6, temperature=0.9, top_k=40, top_p=0.95, seed=record_seed(7, record_id))
        (alone,) = generate(decoder, [tok.encode(prompt).ids], [params], shape,
                            lambda ids: tok.decode(ids, skip_special_tokens=True))
        assert rows[record_id] == {"id": record_id, "text": alone.text, "finish_reason": alone.finish_reason,
                                   "prompt_tokens": alone.prompt_tokens, "completion_tokens": alone.completion_tokens,
                                   "model_name": "lm_llama_tiny", "model_version": "1.0"}
    assert len({r["text"] for r in rows.values()}) > 1 and all(r["completion_tokens"] <= 6 for r in rows.values())
    for shard in (0, 1):  # other batches, other shards, Parquet: the same completions
        score(ScoreOptions(output=str(tmp_path / "b"), batch_size=3, chunk_size=2, num_shards=2, shard_index=shard,
                           **common))
    assert {r["id"]: r for r in read_output(tmp_path / "b")} == rows
    with pytest.raises(PlanMismatch, match="generation: was .*'temperature': 0.9"):
        score(ScoreOptions(output=str(tmp_path / "a"), batch_size=4, chunk_size=5, format="jsonl",
                           **{**common, "generation": GenerationOptions(max_new_tokens=6, temperature=0.5, seed=7)}))
    with pytest.raises(GenerationSettingsError, match="generation.top_p: top_p=0.0 must be within"):
        score(ScoreOptions(output=str(tmp_path / "c"), **{**common, "generation": GenerationOptions(top_p=0.0)}))


def direct_nll(net: torch.nn.Module, ids: list[int], first: int, context: int) -> float:
    """-log p(ids[j] | the up to `context` ids before it) summed over j >= first: one eager forward per token."""
    total = 0.0
    with torch.no_grad():
        for j in range(first, len(ids)):
            window = torch.tensor([ids[max(0, j - context):j]])
            total -= torch.log_softmax(net(window)[0, -1].double(), dim=-1)[ids[j]].item()
    return total


def test_perplexity_equals_a_direct_computation_with_the_eager_model(lm_model, tmp_path):
    texts = documents(6)
    table = write_jsonl(tmp_path / "texts.jsonl", "text", {**texts, **{k: v for k, (v, _) in BAD_TEXTS.items()}})
    net = build_net(load_run_config(lm_model.parent), resolve_checkpoint(lm_model.parent, "best")).eval()
    tok = load_tokenizer(str(lm_model))
    common = dict(model=str(lm_model), input=str(table), columns=Columns(id="id"), task="perplexity", batch_size=4, **FAST)
    score(ScoreOptions(output=str(tmp_path / "default"), **common))  # stride 16 of a 32-token context
    score(ScoreOptions(output=str(tmp_path / "stride1"), perplexity=PerplexityOptions(stride=1), **common))
    default, every = ({r["id"]: r for r in read_output(tmp_path / name)} for name in ("default", "stride1"))
    assert {r["id"]: r["code"] for r in read_rejects(tmp_path / "default")} == {k: c for k, (_, c) in BAD_TEXTS.items()}
    assert any(len(tok.encode(t).ids) > 64 for t in texts.values())  # several windows
    for record_id, text in texts.items():
        ids = [0] + tok.encode(text).ids  # <|endoftext|> first: every token of the text is scored
        row = default[record_id]
        assert row["tokens"] == every[record_id]["tokens"] == len(ids) - 1
        assert math.isclose(row["mean_nll"], row["nll"] / row["tokens"]) and \
            math.isclose(row["perplexity"], math.exp(row["mean_nll"]))
        # stride 1: every token sees the whole context before it, which is what the direct loop computes
        assert math.isclose(every[record_id]["nll"], direct_nll(net, ids, 1, 32), rel_tol=1e-5)
        if len(ids) <= 33:  # one window: the whole text in one eager forward
            with torch.no_grad():
                logp = torch.log_softmax(net(torch.tensor([ids[:-1]]))[0].double(), dim=-1)
            assert math.isclose(row["nll"], -logp.gather(1, torch.tensor(ids[1:])[:, None]).sum().item(), rel_tol=1e-5)


def test_windows_score_each_token_once_within_the_context():
    for length, context, stride in ((2, 32, 16), (33, 32, 16), (34, 32, 16), (100, 32, 16), (100, 32, 32), (70, 8, 3)):
        plan = windows(length, context, stride)
        scored = [t for _, end, first in plan for t in range(first, end + 1)]
        assert scored == list(range(1, length))  # every target once, in order
        for start, end, first in plan:
            assert 0 <= start < first <= end and end - start <= context
            assert first == 1 or first - 1 - start >= context - stride  # history past the first window


def kill_mid_run(args: list[str], out: Path, parts: int) -> None:
    """Start score.py, SIGKILL its process group once `parts` chunks are written."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, str(REPO / "score.py"), *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < parts and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    log = proc.communicate()[0].decode(errors="replace")
    assert not (out / "_SUCCESS.json").exists(), f"the kill did not land mid-run:\n{log}"


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["generation", "perplexity"])
def test_kill_9_then_rerun_scores_every_record_once(lm_model, tmp_path, mode):
    good = prompts(300) if mode == "generation" else documents(300)
    bad = BAD_PROMPTS if mode == "generation" else BAD_TEXTS
    column = "prompt" if mode == "generation" else "text"
    table = write_jsonl(tmp_path / "in.jsonl", column, {**good, **{k: v for k, (v, _) in bad.items()}})
    out = tmp_path / "out"
    job = [f"task={mode}", "generation.max_new_tokens=20", "generation.temperature=0"] if mode == "generation" \
        else [f"task={mode}"]
    args = [f"model={lm_model}", f"input={table}", f"output={out}", "columns.id=id", "chunk_size=6", "batch_size=3",
            "num_workers=1", "torch_threads=1", "progress=false", *job]
    kill_mid_run(args, out, 3)
    written = len(list(out.glob("part-*.parquet")))
    assert 3 <= written < -(-(len(good) + len(bad)) // 6)
    (out / ".part-00000-000099.parquet.abc.tmp").write_bytes(b"half a file")  # a killed writer's temp file

    job = GenerationOptions(max_new_tokens=20, temperature=0.0) if mode == "generation" else GenerationOptions()
    # the same job again, in-process (score.py's own code path after its config check)
    again = score(ScoreOptions(model=str(lm_model), input=str(table), output=str(out), columns=Columns(id="id"),
                               chunk_size=6, batch_size=3, task=mode, generation=job, **FAST))
    assert 0 < again["chunks_resumed"] < again["chunks"]
    ids = [r["id"] for r in read_output(out)]
    assert sorted(ids) == sorted(good)  # each good record exactly once
    assert {r["id"]: r["code"] for r in read_rejects(out)} == {k: code for k, (_, code) in bad.items()}
    summary = json.loads((out / "_SUCCESS.json").read_text())
    assert summary["scored"] == len(good) and summary["total"] == summary["input_records"] == len(good) + len(bad)
    assert not list(out.glob(".*.tmp"))


def test_typo_in_a_generation_option_exits_2_with_the_fix(lm_model, tmp_path):
    proc = run_entry("score.py", f"model={lm_model}", f"input={tmp_path}/p.jsonl", f"output={tmp_path}/o",
                     "generation.max_new_token=4", check=False)
    assert proc.returncode == 2, proc.stderr
    assert "unknown key 'generation.max_new_token'. Did you mean 'max_new_tokens'?" in proc.stderr
    with pytest.raises(ConfigError, match="task='perplexty': use one of generation, perplexity"):
        options_from_config({"model": "m", "input": "i", "output": "o", "task": "perplexty"})
    with pytest.raises(ConfigError, match="perplexity.stride=0: must be >= 1"):
        options_from_config({"model": "m", "input": "i", "output": "o", "perplexity": {"stride": 0}})
