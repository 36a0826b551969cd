"""A tiny real language model for the runtime's generation tests: byte-level BPE tokenizer + a KV-cache decoder.

`TinyKVDecoder` is a small pure-torch transformer with the KVDecoder contract (docs/LM_CONTRACT: input_ids,
attention_mask over past + new, past [L, 2, B, H, P, D] → logits, present; positions from the mask), scripted
for model.pt. The in-process handler tests use it (no training run needed); the TorchServe tests serve the
archive export.py builds for a trained run. No training: the weights are a seeded random init scaled up so that
sampling and positions matter. The folder it writes (`model_folder`) has what an exported archive carries:
model.pt (TorchScript KVDecoder), metadata.json ("task": "language_modeling", "decoder": {...}) and tokenizer.json.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from serving.export.package import HANDLERS_DIR, archive_name, runtime_files

EOS = "<|endoftext|>"
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, hello shipyard",
          "numbers 0123456789 and letters abcdefghijklmnopqrstuvwxyz", "Stop here. Then go on!"] * 4

JSON = "application/json"
GOOD = {"prompt": "the cat sat", "max_new_tokens": 6, "temperature": 0.0}
# malformed requests: (name, JSON body or raw bytes + content type, status, code, field named)
MALFORMED = [
    ("empty prompt", {"prompt": "   "}, 400, "empty_input", "prompt"),
    ("missing prompt", {"max_new_tokens": 3}, 400, "missing_field", "prompt"),
    ("prompt not a string", {"prompt": 42}, 400, "wrong_type", "prompt"),
    ("prompt over the context", {"prompt": "hello world " * 80}, 400, "too_long", "prompt"),
    ("max_new_tokens over the cap", {"prompt": "hi", "max_new_tokens": 100000}, 400, "bad_value", "max_new_tokens"),
    ("max_new_tokens zero", {"prompt": "hi", "max_new_tokens": 0}, 400, "bad_value", "max_new_tokens"),
    ("max_new_tokens a string", {"prompt": "hi", "max_new_tokens": "5"}, 400, "wrong_type", "max_new_tokens"),
    ("max_new_tokens a float", {"prompt": "hi", "max_new_tokens": 2.5}, 400, "wrong_type", "max_new_tokens"),
    ("negative temperature", {"prompt": "hi", "temperature": -1}, 400, "bad_value", "temperature"),
    ("temperature a bool", {"prompt": "hi", "temperature": True}, 400, "wrong_type", "temperature"),
    ("top_p zero", {"prompt": "hi", "top_p": 0}, 400, "bad_value", "top_p"),
    ("top_p above one", {"prompt": "hi", "top_p": 1.5}, 400, "bad_value", "top_p"),
    ("negative top_k", {"prompt": "hi", "top_k": -3}, 400, "bad_value", "top_k"),
    ("negative seed", {"prompt": "hi", "seed": -1}, 400, "bad_value", "seed"),
    ("seed a string", {"prompt": "hi", "seed": "abc"}, 400, "wrong_type", "seed"),
    ("stop not strings", {"prompt": "hi", "stop": [1, 2]}, 400, "wrong_type", "stop"),
    ("empty stop string", {"prompt": "hi", "stop": [""]}, 400, "bad_value", "stop"),
    ("too many stop strings", {"prompt": "hi", "stop": list("abcdefg")}, 400, "bad_value", "stop"),
    ("stream a string", {"prompt": "hi", "stream": "yes"}, 400, "wrong_type", "stream"),
    ("unknown field", {"prompt": "hi", "max_tokens": 5}, 400, "unknown_field", "max_tokens"),
    ("a list body", [{"prompt": "hi"}], 400, "wrong_shape", None),
]
RAW = [  # bodies TorchServe cannot parse itself
    ("non-UTF-8", b'{"prompt": "caf\xe9"}', JSON, 400, "bad_encoding", None),
    ("non-JSON", b"prompt=hello", "application/octet-stream", 400, "bad_json", None),
    ("truncated JSON", b'{"prompt": "hel', "application/octet-stream", 400, "bad_json", None),
    ("nested too deep", b'{"prompt": "hi", "stop": ' + b"[" * 50 + b"]" * 50 + b"}", "application/octet-stream",
     400, "too_deep", None),
    ("NaN temperature", b'{"prompt": "hi", "temperature": NaN}', "application/octet-stream", 400,
     "non_finite_number", None),
    ("empty body", b"", "application/octet-stream", 400, "empty_input", None),
]


def body(obj) -> tuple[bytes, str]:
    return json.dumps(obj).encode(), JSON



def tiny_tokenizer():
    """A byte-level BPE (~300 ids) trained in memory on a few lines; id 0 is the end-of-text token."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=[EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    return tok


class TinyBlock(nn.Module):
    """Pre-LayerNorm attention + MLP with a cache slice [2, B, H, P, D] in and out."""

    def __init__(self, heads: int, dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x: Tensor, allowed: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        """(x, present)."""
        b, t = x.shape[0], x.shape[1]
        qkv = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        k = torch.cat((past[0], qkv[1]), dim=2)
        v = torch.cat((past[1], qkv[2]), dim=2)
        out = F.scaled_dot_product_attention(qkv[0], k, v, attn_mask=allowed)
        x = x + self.proj(out.transpose(1, 2).reshape(b, t, -1))
        return x + self.mlp(self.norm2(x)), torch.stack((k, v))


class TinyKVDecoder(nn.Module):
    """GPT-style decoder (learned positions, pre-LayerNorm blocks) with a functional KV cache."""

    def __init__(self, vocab_size: int, layers: int = 2, heads: int = 4, dim: int = 32, max_seq_len: int = 64,
                 eos_token_id: int = 0, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.tokens, self.positions = nn.Embedding(vocab_size, dim), nn.Embedding(max_seq_len, dim)
        self.blocks = nn.ModuleList([TinyBlock(heads, dim) for _ in range(layers)])
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, vocab_size)
        with torch.no_grad():
            for p in self.parameters():
                p.mul_(4.0 if p.ndim > 1 else 1.0)
        self.meta = {"num_layers": layers, "num_kv_heads": heads, "head_dim": dim // heads, "vocab_size": vocab_size,
                     "max_seq_len": max_seq_len, "eos_token_id": eos_token_id, "dtype": "float32"}
        self.eval()

    def forward(self, input_ids: Tensor, attention_mask: Tensor, past: Tensor) -> tuple[Tensor, Tensor]:
        """(logits [B, T, V], present [L, 2, B, H, P+T, D])."""
        t, s = input_ids.shape[1], attention_mask.shape[1]
        pos = (attention_mask.cumsum(-1) - 1).clamp(min=0)[:, s - t:]
        keys = torch.arange(s)
        queries = torch.arange(t) + (s - t)
        # a query sees real keys at or before it, and always itself (a padded row is never empty)
        real = (attention_mask > 0)[:, None, None, :]
        causal = (keys[None, :] <= queries[:, None])[None, None]
        allowed = (causal & real) | (keys[None, :] == queries[:, None])[None, None]
        x = self.tokens(input_ids) + self.positions(pos)
        presents = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, allowed, past[i])
            presents.append(kv)
        return self.head(self.norm(x)).float(), torch.stack(presents)


def tiny_decoder(vocab_size: int, seed: int = 0, max_seq_len: int = 64) -> TinyKVDecoder:
    """The tiny decoder with random (scaled) weights; eos id 0."""
    return TinyKVDecoder(vocab_size, max_seq_len=max_seq_len, seed=seed)


def model_folder(root: Path, max_seq_len: int = 64) -> Path:
    """What a .mar carries for an LM: model.pt (scripted KVDecoder), metadata.json, tokenizer.json."""
    root.mkdir(parents=True, exist_ok=True)
    tok = tiny_tokenizer()
    tok.save(str(root / "tokenizer.json"))
    decoder = tiny_decoder(tok.get_vocab_size(), max_seq_len=max_seq_len)
    torch.jit.script(decoder).save(str(root / "model.pt"))
    (root / "metadata.json").write_text(json.dumps({"task": "language_modeling", "model_name": "tiny_lm",
                                                    "version": "1.0", "decoder": decoder.meta}))
    return root


def build_lm_mar(folder: Path, out_dir: Path, name: str = "tiny_lm", version: str = "1.0") -> Path:
    """torch-model-archiver over `model_folder`: the text_generator entry, runtime/, metadata.json, tokenizer.json."""
    with tempfile.TemporaryDirectory(prefix="lm-mar-") as tmp:
        extra = Path(tmp) / "extra"
        for helper in runtime_files():
            (extra / archive_name(helper)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(helper, extra / archive_name(helper))
        for file in ("metadata.json", "tokenizer.json"):
            shutil.copy2(folder / file, extra / file)
        out_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run([str(Path(sys.executable).parent / "torch-model-archiver"), "--model-name", name, "--version",
                        version, "--serialized-file", str(folder / "model.pt"), "--handler",
                        str(HANDLERS_DIR / "text_generator.py"), "--extra-files", str(extra), "--export-path",
                        str(out_dir), "-f"], check=True, capture_output=True, env={**os.environ, "TMPDIR": tmp})
    return out_dir / f"{name}.mar"
