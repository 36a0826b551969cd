"""A tiny real language model for the runtime's generation tests: byte-level BPE tokenizer + CausalLM + KVDecoder.

No training: the weights are a seeded random init scaled up so that sampling and positions matter. The folder
it writes (`model_folder`) has what an exported archive carries: model.pt (TorchScript KVDecoder),
metadata.json ("task": "language_modeling", "decoder": {...}) and tokenizer.json.
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

from trainers.nets.causal_lm import CausalLM
from trainers.nets.kv_decoder import KVDecoder
from serving.export.package import HANDLERS_DIR, archive_name, runtime_files

EOS = "<|endoftext|>"
CORPUS = ["the cat sat on the mat", "a dog ran in the park", "hello world, hello shipyard",
          "numbers 0123456789 and letters abcdefghijklmnopqrstuvwxyz", "Stop here. Then go on!"] * 4


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


def tiny_decoder(vocab_size: int, arch: str = "llama", seed: int = 0, max_seq_len: int = 64) -> KVDecoder:
    """KVDecoder over a 2-layer CausalLM with random (scaled) weights; eos id 0."""
    config = {"llama": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                        "num_key_value_heads": 2, "tie_word_embeddings": True, "eos_token_id": 0},
              "gpt2": {"n_embd": 32, "n_layer": 2, "n_head": 4, "eos_token_id": 0}}[arch]
    net = CausalLM(arch, config, vocab_size=vocab_size, max_seq_len=max_seq_len, seed=seed).eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(4.0 if p.ndim > 1 else 1.0)
    return KVDecoder(net)


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
