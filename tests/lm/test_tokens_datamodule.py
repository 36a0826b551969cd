"""datamodule=tokens: packed windows, by-document splits, determinism, disjoint rank shares, exact mid-epoch resume."""
from __future__ import annotations

import json
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from datamodules.token_build import tokenize_corpus
from datamodules.tokens import TokensDataModule

STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 real stdlib modules and 30 short one-line documents, tokenized with a 300-id BPE."""
    root = tmp_path_factory.mktemp("tokens")
    src = root / "in"
    src.mkdir()
    for path in sorted(STDLIB.glob("*.py"))[:40]:
        (src / path.name).write_bytes(path.read_bytes())
    (src / "short.jsonl").write_text("".join(json.dumps({"text": f"short document {i}"}) + "\n" for i in range(30)))
    tokenize_corpus(src, root / "out", vocab_size=300, shard_tokens=50_000)
    return root / "out"


def module(data_dir: Path, **kwargs: object) -> TokensDataModule:
    dm = TokensDataModule(data_dir=str(data_dir), **{"seq_len": 32, "batch_size": 8, "seed": 3,
                                                     "val_fraction": 0.1, "test_fraction": 0.1, **kwargs})
    dm.setup("fit")
    return dm


def test_windows_pack_the_split_documents_with_end_of_text(data_dir: Path) -> None:
    dm = module(data_dir)
    for split in ("train", "val", "test"):
        stream = np.concatenate(list(dm.documents(split)))  # the split's documents end to end
        data = dm.datasets[split]
        assert len(data) == (len(stream) - 1) // 32 and len(data) > 0
        for i in (0, len(data) // 2, len(data) - 1):
            item = data[i]
            assert item["input_ids"].tolist() == stream[i * 32:i * 32 + 32].tolist()
            assert item["labels"].tolist() == stream[i * 32 + 1:i * 32 + 33].tolist()  # shifted by one
    assert (np.concatenate(list(dm.documents("train"))) == dm.eot_id).sum() == len(dm.splits["train"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape == (8, 32) and batch["input_ids"].dtype == torch.long
    assert batch["labels"].shape == (8, 32) and batch["labels"].dtype == torch.long
    assert dm.vocab_size == 300 and dm.eot_id == dm.tokenizer.token_to_id("<|endoftext|>")


def test_split_is_by_document_seeded_and_complete(data_dir: Path) -> None:
    dm = module(data_dir)
    total = json.loads((data_dir / "index.json").read_text())["documents"]
    train, val, test = (set(dm.splits[s].tolist()) for s in ("train", "val", "test"))
    assert not train & val and not train & test and not val & test  # no document in two splits
    assert train | val | test == set(range(total)) and len(val) == len(test) == round(0.1 * total)
    again = module(data_dir)
    assert all((dm.splits[s] == again.splits[s]).all() for s in dm.splits) and dm.fingerprint() == again.fingerprint()
    other = module(data_dir, seed=4)
    assert set(other.splits["val"].tolist()) != val and other.fingerprint() != dm.fingerprint()


def test_loaders_are_deterministic(data_dir: Path) -> None:
    first = [b["input_ids"] for b in module(data_dir).train_dataloader()]
    second = [b["input_ids"] for b in module(data_dir).train_dataloader()]
    assert len(first) == len(second) and all(torch.equal(a, b) for a, b in zip(first, second))
    big = {"seq_len": 256, "batch_size": 64}  # few batches: worker IPC is slow on a busy machine
    alone = [b["input_ids"] for b in module(data_dir, **big).train_dataloader()]
    workers = [b["input_ids"] for b in module(data_dir, num_workers=2, **big).train_dataloader()]  # forked readers
    assert len(workers) == len(alone) and all(torch.equal(a, b) for a, b in zip(alone, workers))


def _rank_windows(data_dir: Path, world: int, rank: int, epoch: int) -> list[int]:
    dm = module(data_dir)
    dm.trainer = SimpleNamespace(world_size=world, global_rank=rank)  # what Lightning's trainer reports per rank
    sampler = dm.train_dataloader().sampler
    sampler.set_epoch(epoch)
    return list(sampler)


@pytest.mark.parametrize("world", [2, 3])
def test_rank_shares_are_disjoint_and_cover_the_epoch(data_dir: Path, world: int) -> None:
    count = len(module(data_dir).datasets["train"])
    for epoch in (0, 1):
        shares = [_rank_windows(data_dir, world, rank, epoch) for rank in range(world)]
        seen = [i for share in shares for i in share]
        assert len(set(seen)) == len(seen)  # disjoint
        assert len({len(s) for s in shares}) == 1  # equal lengths: no rank waits on another
        assert count - world < len(seen) <= count  # everything but the < world windows drop_last leaves
    assert _rank_windows(data_dir, 2, 0, 0) != _rank_windows(data_dir, 2, 0, 1)  # reshuffled per epoch


class Recorder(LightningModule):
    """A tiny real LM (embedding + linear) that records the windows it trains on."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(300, 8)
        self.head = torch.nn.Linear(8, 300)
        self.seen: list[list[int]] = []

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.seen += batch["input_ids"][:, :4].tolist()
        logits = self.head(self.embed(batch["input_ids"]))
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(tmp: Path, callbacks: list | None = None) -> Trainer:
    return Trainer(max_epochs=2, limit_val_batches=0, logger=False, enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=bool(callbacks), callbacks=callbacks or [],
                   default_root_dir=str(tmp), accelerator="cpu", devices=1)


def test_mid_epoch_resume_gives_the_same_samples_in_the_same_order(data_dir: Path, tmp_path: Path) -> None:
    big = {"seq_len": 256, "batch_size": 64}  # ~35 steps an epoch
    per_epoch = len(module(data_dir, **big).train_dataloader())
    stop = per_epoch + per_epoch // 2  # in the middle of the second epoch
    whole = Recorder()
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=stop, save_top_k=-1,
                                 filename="step{step}")
    _trainer(tmp_path, [checkpoint]).fit(whole, module(data_dir, **big))
    path = next((tmp_path / "ckpt").glob(f"step*{stop}*.ckpt"))
    resumed = Recorder()
    _trainer(tmp_path / "again").fit(resumed, module(data_dir, **big), ckpt_path=str(path))
    assert len(whole.seen) == 2 * per_epoch * 64  # full batches only (the tail of an epoch is dropped)
    assert len(resumed.seen) == len(whole.seen) - stop * 64
    assert resumed.seen == whole.seen[stop * 64:]  # exactly the rest, in order


def test_artifacts_hold_the_tokenizer_and_the_splits(data_dir: Path, tmp_path: Path) -> None:
    from tokenizers import Tokenizer

    dm = module(data_dir)
    files = dm.artifacts()
    path = tmp_path / "data" / "tokenizer" / "tokenizer.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(files["data/tokenizer/tokenizer.json"], indent=2, sort_keys=True))  # as run.py writes
    text = "def f(x):\n    return x + 1\n"
    assert Tokenizer.from_file(str(path)).encode(text).ids == dm.tokenizer.encode(text).ids
    assert files["data/splits.json"]["val"] == dm.splits["val"].tolist()
    assert files["data/tokens.json"]["vocab_size"] == 300 and files["data/tokens.json"]["seq_len"] == 32


def test_too_long_seq_len_names_the_fix(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="lower seq_len"):
        module(data_dir, seq_len=10_000_000)


PROBE = """
import sys
from datamodules.tokens import TokensDataModule
dm = TokensDataModule(cache_dir=sys.argv[1], seq_len=64, vocab_size=1024)
dm.setup("fit")
print(dm.data_dir, len(dm.datasets["train"]), dm.fingerprint())
"""


@pytest.mark.slow  # ~10 s alone: one BPE training + encoding of the 4.7 MB corpus
def test_bundled_corpus_is_tokenized_once_under_concurrent_ranks(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert sum("tokenizing the bundled stdlib corpus" in err for _, err in outputs) == 1  # one rank did the work
    assert outputs[0][0] == outputs[1][0]  # same folder, windows and split for both
    folder = Path(outputs[0][0].split()[0])
    index = json.loads((folder / "index.json").read_text())
    assert index["documents"] > 100 and index["vocab_size"] == 1024 and index["rejected"] == 0
    assert not list(tmp_path.glob(".*partial"))  # the finished folder appeared whole, by rename


def test_data_checks_report_the_rejects(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for path in sorted(STDLIB.glob("*.py"))[:6]:
        (src / path.name).write_bytes(path.read_bytes())
    (src / "broken.txt").write_bytes(b"\xff\xfe")
    tokenize_corpus(src, tmp_path / "out", vocab_size=300)
    report = module(tmp_path / "out", val_fraction=0.2, test_fraction=0.2).run_data_checks()
    assert report["records"] == 7 and report["rejected"] == 1 and report["rejects_file"].endswith("rejects.jsonl")
