"""KVDecoder (pure torch, functional KV cache) computes what CausalLM's full forward computes: whole sequences,
prefill + one-token decode steps, left-padded batches (positions from the mask), masked cache slots, TorchScript."""
from __future__ import annotations

import pytest
import torch

from trainers.nets.causal_lm import CausalLM
from trainers.nets.kv_decoder import KVDecoder, empty_past

NETS = {
    "llama": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "tie_word_embeddings": True},
    "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4},
}
VOCAB, ATOL = 61, 1e-5


@pytest.fixture(scope="module", params=sorted(NETS))
def nets(request: pytest.FixtureRequest) -> tuple[CausalLM, KVDecoder]:
    net = CausalLM(request.param, NETS[request.param], vocab_size=VOCAB, max_seq_len=32, seed=0).eval()
    with torch.no_grad():  # random init is tiny: scale the weights up so attention and positions really matter
        for p in net.parameters():
            p.mul_(8.0 if p.ndim > 1 else 1.0)
    return net, KVDecoder(net)


def full(net: CausalLM, ids: list[int]) -> torch.Tensor:
    """CausalLM's logits [T, V] for one unpadded sequence."""
    return net(torch.tensor([ids]))[0]


@torch.no_grad()
def test_whole_sequence_and_incremental_decode_match_the_full_forward(nets):
    net, dec = nets
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(1))
    meta = dec.meta
    logits, present = dec(ids, torch.ones_like(ids), empty_past(meta, 2))
    reference = net(ids)
    assert present.shape == (meta["num_layers"], 2, 2, meta["num_kv_heads"], 9, meta["head_dim"])
    assert (logits - reference).abs().max() < ATOL
    assert reference.std() > 0.5  # the test model's logits are not all alike (a positional bug would show)

    steps, past = [], empty_past(meta, 2)
    for t in range(9):  # token by token from an empty cache
        out, past = dec(ids[:, t:t + 1], torch.ones(2, t + 1, dtype=torch.long), past)
        steps.append(out)
    assert (torch.cat(steps, dim=1) - reference).abs().max() < ATOL
    assert (past - present).abs().max() < ATOL


@torch.no_grad()
def test_left_padded_batch_with_a_masked_cache_slot_matches_each_sequence_alone(nets):
    net, dec = nets
    prompts = [[5, 9, 2, 33, 7], [11], [40, 3, 3]]
    width = max(map(len, prompts))
    ids = torch.tensor([[0] * (width - len(p)) + p for p in prompts])
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
    past = empty_past(dec.meta, 3, 1)  # a masked slot in the cache (as a finished or padded entry) is never seen
    past.normal_()
    mask = torch.cat((torch.zeros(3, 1, dtype=torch.long), mask), dim=1)
    logits, past = dec(ids, mask, past)
    for row, p in enumerate(prompts):
        assert (logits[row, width - len(p):] - full(net, p)).abs().max() < ATOL
    nxt = torch.tensor([[17], [23], [29]])
    for step in range(3):  # decode: one forward for the whole batch per step
        mask = torch.cat((mask, torch.ones(3, 1, dtype=torch.long)), dim=1)
        out, past = dec(nxt, mask, past)
        for row, p in enumerate(prompts):
            p.append(int(nxt[row, 0]))
            assert (out[row, 0] - full(net, p)[-1]).abs().max() < ATOL
        nxt = out[:, -1].argmax(-1, keepdim=True)
    assert past.shape[4] == 1 + width + 3


@torch.no_grad()
def test_torchscript_scripts_the_decoder_and_agrees(nets):
    net, dec = nets
    scripted = torch.jit.script(dec)
    ids = torch.tensor([[0, 4, 8, 15], [16, 23, 42, 7]])
    mask = torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    a, pa = dec(ids, mask, empty_past(dec.meta, 2))
    b, pb = scripted(ids, mask, empty_past(dec.meta, 2))
    assert (a - b).abs().max() < ATOL and (pa - pb).abs().max() < ATOL
    assert dec.meta["arch"] == net.arch and dec.meta["vocab_size"] == VOCAB


@torch.no_grad()
def test_export_parity_passes_the_decoder_and_fails_a_different_model(nets):
    from serving.export.parity import Tolerance
    from serving.export.tasks import language_modeling as lm

    net, dec = nets
    other = CausalLM(net.arch, NETS[net.arch], vocab_size=VOCAB, max_seq_len=32, seed=1).eval()
    batches = [lm.example_args({"input_ids": torch.randint(0, VOCAB, (3, 8))}, dec.meta)]
    prompts = [[3, 4, 5], [9]]
    good = lm.compare(net, dec, batches, Tolerance(), prompts, dec.meta)
    assert good.passed and good.greedy_identical and good.max_abs_diff < 1e-5
    bad = lm.compare(net, KVDecoder(other), batches, Tolerance(), prompts, dec.meta)
    assert not bad.passed and not bad.greedy_identical and bad.max_abs_diff > 1e-4
    assert "greedy tokens identical: False" in lm.failure_message("torchscript", bad, Tolerance())
