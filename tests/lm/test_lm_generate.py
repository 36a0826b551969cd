"""runtime/lm_generate.py over a real tiny KV-cache decoder (tests/lm/lm_fixtures.py): batched = alone = full recompute, seeds independent of the
batch, one forward per decode step with finished sequences leaving, stop strings, length, eos and time budgets."""
from __future__ import annotations

import pytest
import torch

from runtime.lm_generate import DecoderShape, SamplingParams, generate, sample_token
from tests.lm.lm_fixtures import tiny_decoder, tiny_tokenizer

PROMPTS = ["the cat sat", "hello", "numbers 0123456789 and letters abc"]


@pytest.fixture(scope="module")
def lm():
    tok = tiny_tokenizer()
    decoder = tiny_decoder(tok.get_vocab_size())
    shape = DecoderShape.from_metadata(decoder.meta)
    return tok, decoder, shape


def ids(tok, text: str) -> list[int]:
    return tok.encode(text).ids


def run(lm, prompts, params, **kwargs):
    tok, decoder, shape = lm
    return generate(decoder, [ids(tok, p) for p in prompts], params, shape,
                    lambda t: tok.decode(t, skip_special_tokens=True), **kwargs)


@torch.no_grad()
def recompute_greedy(decoder, prompt: list[int], n: int) -> list[int]:
    """The reference: the whole sequence through the net at every step (no cache, no padding)."""
    seq = list(prompt)
    for _ in range(n):
        logits, _ = decoder(torch.tensor([seq]), torch.ones(1, len(seq), dtype=torch.long),
                            torch.zeros(decoder.meta["num_layers"], 2, 1, decoder.meta["num_kv_heads"], 0,
                                        decoder.meta["head_dim"]))
        token = int(logits[0, -1].argmax())
        if token == decoder.meta["eos_token_id"]:
            break
        seq.append(token)
    return seq[len(prompt):]


def test_batched_greedy_equals_each_prompt_alone_and_full_recompute(lm):
    tok, decoder, _ = lm
    greedy = [SamplingParams(max_new_tokens=12, temperature=0.0) for _ in PROMPTS]
    batched = run(lm, PROMPTS, greedy)
    for prompt, gen in zip(PROMPTS, batched):
        (alone,) = run(lm, [prompt], [SamplingParams(max_new_tokens=12, temperature=0.0)])
        assert gen.tokens == alone.tokens == recompute_greedy(decoder, ids(tok, prompt), 12)
        assert gen.prompt_tokens == len(ids(tok, prompt))
    assert any(g.completion_tokens > 3 for g in batched)


def test_same_seed_same_tokens_whatever_the_batch(lm):
    mine = SamplingParams(max_new_tokens=10, temperature=1.3, top_p=0.95, top_k=50, seed=1234)
    (alone,) = run(lm, ["hello"], [mine])
    others = [SamplingParams(max_new_tokens=3, temperature=0.7, seed=1), SamplingParams(max_new_tokens=20,
                                                                                         temperature=0.0)]
    in_batch = run(lm, ["the cat sat", "hello", "numbers 0123456789 and letters abc"],
                   [others[0], mine, others[1]])
    reordered = run(lm, ["hello", "a dog"], [mine, others[0]])
    assert alone.tokens == in_batch[1].tokens == reordered[0].tokens
    (other_seed,) = run(lm, ["hello"], [SamplingParams(max_new_tokens=10, temperature=1.3, top_p=0.95, top_k=50,
                                                       seed=99)])
    assert other_seed.tokens != alone.tokens  # sampling really happens


def test_one_forward_per_step_and_finished_sequences_leave(lm):
    tok, decoder, shape = lm
    batch_sizes: list[tuple[int, int]] = []

    def counted(input_ids, mask, past):
        batch_sizes.append(tuple(input_ids.shape))
        return decoder(input_ids, mask, past)

    lengths = [2, 5, 9]
    gens = generate(counted, [ids(tok, p) for p in PROMPTS],
                    [SamplingParams(max_new_tokens=n, temperature=0.0) for n in lengths], shape,
                    lambda t: tok.decode(t))
    assert [g.finish_reason for g in gens] == ["length"] * 3 and [g.completion_tokens for g in gens] == lengths
    width = max(len(ids(tok, p)) for p in PROMPTS)
    assert batch_sizes[0] == (3, width)  # one prefill of all prompts, left-padded
    decode = [b for b, t in batch_sizes[1:]]
    assert len(batch_sizes) == max(lengths)  # the last token needs no forward
    assert decode == [3] * 1 + [2] * 3 + [1] * 4


def test_stop_strings_cut_and_are_never_streamed(lm):
    tok, _, _ = lm
    (free,) = run(lm, ["the cat sat"], [SamplingParams(max_new_tokens=24, temperature=0.0)])
    assert len(free.text) > 6
    stop = free.text[3:6]
    streamed: list[str] = []
    (gen,) = run(lm, ["the cat sat"], [SamplingParams(max_new_tokens=24, temperature=0.0, stop=("zzzz", stop))],
                 on_delta=lambda i, text, toks, finish: streamed.append(text))
    assert gen.finish_reason == "stop" and gen.text == free.text[:free.text.find(stop)]
    assert "".join(streamed) == gen.text and stop not in "".join(streamed)


def test_streamed_deltas_add_up_to_the_answer(lm):
    steps = []
    deltas: dict[int, list[str]] = {0: [], 1: []}
    tokens: dict[int, list[int]] = {0: [], 1: []}

    def on_delta(i, text, toks, finish):
        deltas[i].append(text)
        tokens[i].extend(toks)

    gens = run(lm, ["hello", "a dog ran"], [SamplingParams(max_new_tokens=8, temperature=0.0),
                                             SamplingParams(max_new_tokens=4, temperature=0.9, seed=3)],
               on_delta=on_delta, on_step=lambda: steps.append(1))
    assert ["".join(deltas[i]) for i in (0, 1)] == [g.text for g in gens]
    assert [tokens[i] for i in (0, 1)] == [g.tokens for g in gens]
    assert len(steps) == 8


def test_eos_and_time_budget_finish_reasons(lm):
    tok, decoder, shape = lm
    eos = shape.eos_token_id

    def eos_after_two(input_ids, mask, past):  # the real decoder, with the eos logit raised from the 3rd token
        logits, present = decoder(input_ids, mask, past)
        if mask.shape[1] - shape.min_past - input_ids.shape[1] >= len(ids(tok, "hello")) + 1:
            logits[..., eos] = 1e4
        return logits, present

    (gen,) = generate(eos_after_two, [ids(tok, "hello")], [SamplingParams(max_new_tokens=20, temperature=0.0)],
                      shape, lambda t: tok.decode(t))
    assert gen.finish_reason == "stop" and gen.completion_tokens == 2 and eos not in gen.tokens

    ticks = iter(range(1000))
    (slow,) = run(lm, ["hello"], [SamplingParams(max_new_tokens=50, temperature=0.0, time_budget_s=3.5)],
                  clock=lambda: float(next(ticks)))
    assert slow.finish_reason == "time" and slow.completion_tokens == 4


def test_context_length_caps_generation(lm):
    tok, decoder, _ = lm
    shape = DecoderShape.from_metadata({**decoder.meta, "max_seq_len": len(ids(tok, "hello")) + 3})
    (gen,) = generate(decoder, [ids(tok, "hello")], [SamplingParams(max_new_tokens=50, temperature=0.0)], shape,
                      lambda t: tok.decode(t))
    assert gen.finish_reason == "length" and gen.completion_tokens == 3


def test_top_k_one_and_tiny_top_p_are_greedy():
    logits = torch.randn(300, generator=torch.Generator().manual_seed(0)) * 3
    best = int(logits.argmax())
    for params in (SamplingParams(temperature=2.0, top_k=1), SamplingParams(temperature=2.0, top_p=1e-6)):
        g = torch.Generator().manual_seed(5)
        assert {sample_token(logits, params, g) for _ in range(20)} == {best}
    g = torch.Generator().manual_seed(5)
    kept = {sample_token(logits, SamplingParams(temperature=1.0, top_k=5), g) for _ in range(200)}
    assert kept <= set(torch.topk(logits, 5).indices.tolist()) and len(kept) > 1
