"""Language-model data: packed seq_len windows over token shards (datamodule=tokens).

`data_dir` is a folder made by `python -m datamodules.tokenize`; unset, the bundled corpus
(`corpus=stdlib`) is tokenized into the cache on first use. Documents are split into train/val/test
by a seeded draw, laid end to end per split (each ends in <|endoftext|>) and cut into windows of
seq_len + 1 ids; batches are {"input_ids": [B, T], "labels": [B, T]} with labels = input shifted by one.
Nothing is loaded: windows are read from the shards on demand (datamodules/token_shards.py).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader

from core import rundir
from datamodules.epoch_state import EpochResumeMixin
from datamodules.token_build import load_tokenizer
from datamodules.token_shards import TOKENIZER, TokenDataError, TokenShards, read_index
from datamodules.token_windows import PackedWindows, split_documents

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
TOKENIZER_ARTIFACT = rundir.TOKENIZER_FILE


class TokensDataModule(EpochResumeMixin, LightningDataModule):
    """Token shards → packed windows; a disjoint, seeded share per rank; exact mid-epoch resume."""

    task = "language_modeling"  # the task the data is for (trainers.tasks.TASKS)

    def __init__(
        self,
        data_dir: str | None = None,
        corpus: str = "stdlib",
        vocab_size: int = 8192,
        seq_len: int = 256,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        val_fraction: float = 0.05,
        test_fraction: float = 0.05,
        pin_memory: bool = False,
        cache_dir: str | None = None,
    ) -> None:
        super().__init__()
        if seq_len < 1 or batch_size < 1:
            raise TokenDataError(f"datamodule.seq_len={seq_len} and batch_size={batch_size} must be >= 1")
        self.data_dir = Path(data_dir) if data_dir else None
        self.corpus = corpus  # used only when data_dir is unset
        self.corpus_vocab_size = vocab_size  # the bundled corpus's tokenizer size; a data_dir has its own
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.pin_memory = pin_memory
        self.cache_dir = cache_dir
        self.index: dict[str, Any] = {}
        self.splits: dict[str, np.ndarray] = {}
        self.datasets: dict[str, PackedWindows] = {}
        self._tokenizer: Any = None
        self._ready = False

    # ---------------------------------------------------------------- Lightning API
    def prepare_data(self) -> None:
        """Tokenize the bundled corpus if this machine has not yet (a lock makes concurrent ranks safe)."""
        self._resolve_dir()

    def _resolve_dir(self) -> Path:
        if self.data_dir is None:
            from datamodules.corpora import corpus_dir

            cache = Path(self.cache_dir) if self.cache_dir else None
            self.data_dir = corpus_dir(self.corpus, self.corpus_vocab_size, cache)
        return self.data_dir

    def setup(self, stage: str | None = None) -> None:
        """Read the document index, split it by document, build the window datasets (no token is read)."""
        if self._ready:
            return
        data_dir = self._resolve_dir()
        self.index = read_index(data_dir)
        documents = np.load(data_dir / self.index["documents_file"], mmap_mode="r")
        self.splits = split_documents(len(documents), self.val_fraction, self.test_fraction, self.seed)
        shards = TokenShards(data_dir, self.index)
        for split in SPLITS:
            self.datasets[split] = PackedWindows(shards, documents[self.splits[split]], self.seq_len)
            if len(self.datasets[split]) == 0:
                raise TokenDataError(
                    f"the {split} split of {data_dir} has {self.datasets[split].tokens} tokens, fewer than "
                    f"datamodule.seq_len + 1 = {self.seq_len + 1}: lower seq_len, raise the split's fraction "
                    "or tokenize more text")
        self._ready = True

    def _loader(self, split: str) -> DataLoader:
        train = split == "train"
        generator = torch.Generator().manual_seed(self.seed)  # keeps loaders off the global RNG
        sampler = None
        if train:
            # drop_last: every rank gets a disjoint share of the same seeded permutation
            sampler = self.train_sampler(len(self.datasets[split]), drop_last=True)
            generator = sampler.loader_generator
        else:
            sampler = self.eval_sampler(len(self.datasets[split]))
        return DataLoader(self.datasets[split], batch_size=self.batch_size, shuffle=False, sampler=sampler,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=self.pin_memory, generator=generator,
                          drop_last=train)  # constant train shapes: torch.compile never recompiles for a tail

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    # ---------------------------------------------------------------- what the task and the run need
    @property
    def tokenizer(self) -> Any:
        """The `tokenizers` Tokenizer the ids come from."""
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self._resolve_dir() / TOKENIZER)
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        return int(self._index()["vocab_size"])

    @property
    def eot_id(self) -> int:
        """<|endoftext|>: the document separator and end of sequence."""
        return int(self._index()["eot_id"])

    def _index(self) -> dict[str, Any]:
        if not self.index:
            self.index = read_index(self._resolve_dir())
        return self.index

    def documents(self, split: str):  # noqa: ANN201 - an iterator of np.ndarray
        """Each document of a split as its token ids (end-of-text included), read one at a time."""
        data = self.datasets[split]
        for shard, offset, length in data.documents:
            yield data.shards.read(int(shard), int(offset), int(length))

    def split_summary(self) -> dict[str, dict[str, int]]:
        """Documents, tokens and windows per split."""
        return {s: {"documents": len(self.splits[s]), "tokens": self.datasets[s].tokens,
                    "windows": len(self.datasets[s])} for s in SPLITS}

    def run_info(self) -> dict[str, Any]:
        """What run.json records about the data of an LM run."""
        return {"vocab_size": self.vocab_size, "seq_len": self.seq_len, "eot_id": self.eot_id,
                "data_dir": str(self._resolve_dir()), "splits": self.split_summary()}

    def run_data_checks(self) -> dict[str, Any]:
        """What train() runs once before fit: the tokenization's rejects, reported (the classification checks
        of datamodules/checks/ do not apply to token streams)."""
        index = self._index()
        share = index["rejected"] / max(index["records"], 1)
        rejects_file = str(self._resolve_dir() / index["rejects_file"])
        summary = (f"{index['rejected']} of {index['records']} records rejected when tokenized "
                   f"({100 * share:.1f}%): see {rejects_file}")
        if index["rejected"]:
            log.warning("%s", summary)
        # the shape of datamodules/checks reports: checks → status + summary, and the failures (none: reported only)
        return {"checks": {"rejected_records": {"status": "warn" if index["rejected"] else "ok", "summary": summary}},
                "failures": [], "records": index["records"], "rejected": index["rejected"],
                "rejected_fraction": share, "rejects_file": rejects_file, "splits": self.split_summary()}

    def fingerprint(self) -> str:
        """sha256 over the source, the tokenizer, the shards and the split assignment."""
        index = self._index()
        h = hashlib.sha256(json.dumps({
            "source": index["source"]["source_fingerprint"], "tokenizer": index["tokenizer_sha256"],
            "shards": [s["sha256"] for s in index["shards"]], "seq_len": self.seq_len}, sort_keys=True).encode())
        for split in SPLITS:
            h.update(split.encode() + np.ascontiguousarray(self.splits[split], dtype=np.int64).tobytes())
        return h.hexdigest()

    def artifacts(self) -> dict[str, Any]:
        """Plain-data files the run directory keeps under `data/`: the tokenizer, the splits, the rejects."""
        data_dir = self._resolve_dir()
        rejects_path = data_dir / self.index["rejects_file"]
        lines = rejects_path.read_text().splitlines()[:1000] if rejects_path.exists() else []  # the first 1000
        rejects = [json.loads(line) for line in lines]
        return {
            TOKENIZER_ARTIFACT: json.loads((data_dir / TOKENIZER).read_text()),
            # document numbers (rows of documents.npy) per split, like the item ids of the other datamodules
            rundir.SPLITS: {s: self.splits[s].tolist() for s in SPLITS},
            rundir.TOKENS_INFO: {"data_dir": str(data_dir), "seed": self.seed, **self.run_info(),
                                 "index": {k: self.index[k] for k in ("documents", "tokens", "dtype", "records",
                                                                      "rejected", "tokenizer_sha256", "source")}},
            rundir.BAD_RECORDS: {"total_records": self.index["records"], "bad_count": self.index["rejected"],
                                      "bad_records": rejects, "file": str(rejects_path)},
        }
