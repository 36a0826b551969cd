"""An export folder (RUN_DIR/export, its staging folder, or an unpacked .mar's model dir): its files by name."""
from __future__ import annotations

from pathlib import Path

from core.run_layout import (
    ARCHIVES_DIR, EXPORT_JSON, EXPORT_TOKENIZER_DIR, EXPORT_TOKENIZER_FILE, EXPORTED_PROGRAM, HF_DIR, INDEX_TO_NAME, METADATA, MODEL_CARD, PREPROCESS,
    SCRIPTED_MODEL,
)

# what a .mar carries besides the model file, the handler and runtime/ (tokenizer/ too for text models)
ARCHIVE_DATA_FILES = (PREPROCESS, INDEX_TO_NAME, METADATA, MODEL_CARD)
# a language model's .mar: the decoder's metadata and the tokenizer file (no spec, no labels)
LM_ARCHIVE_DATA_FILES = (METADATA, MODEL_CARD, EXPORT_TOKENIZER_FILE)
MODEL_FILES = (SCRIPTED_MODEL, EXPORTED_PROGRAM)  # TorchScript first: it is what the handler serves


class ExportDir:
    """The files of one export folder; built by serving/export, read by scoring, the registry and benchmarks."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ExportDir({str(self.path)!r})"

    def __truediv__(self, rel: str) -> Path:
        return self.path / rel

    scripted_model_path = property(lambda self: self.path / SCRIPTED_MODEL, doc="model.pt (TorchScript, served)")
    program_path = property(lambda self: self.path / EXPORTED_PROGRAM, doc="model.pt2 (torch.export)")
    spec_path = property(lambda self: self.path / PREPROCESS, doc="preprocess.json (tokenizer_dir made relative)")
    index_to_name_path = property(lambda self: self.path / INDEX_TO_NAME, doc="index_to_name.json")
    metadata_path = property(lambda self: self.path / METADATA, doc="metadata.json: the export's provenance")
    model_card_path = property(lambda self: self.path / MODEL_CARD, doc="MODEL_CARD.md (a copy of the run's)")
    tokenizer_dir = property(lambda self: self.path / EXPORT_TOKENIZER_DIR, doc="tokenizer/ (text models)")
    tokenizer_file = property(lambda self: self.path / EXPORT_TOKENIZER_FILE, doc="tokenizer.json (language models)")
    hf_dir = property(lambda self: self.path / HF_DIR, doc="hf/: the Hugging Face folder (export.py format=hf)")
    export_json_path = property(lambda self: self.path / EXPORT_JSON, doc="export.json: the latest export's record")
    archives_dir = property(lambda self: self.path / ARCHIVES_DIR, doc="archives/<version>/<name>.mar")
