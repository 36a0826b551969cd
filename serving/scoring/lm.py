"""Batch jobs over a language-model export: loaded as the text-generation handler loads it, and a prompt table.

Generation (kind "prompt") is the handler's own code, step by step: each record becomes the request the
handler would validate (runtime/lm_io.py `decode_request`: empty prompt, non-string, prompt not shorter than
the context, bad sampling values → a reject with the handler's reason and code), a batch of them goes
through runtime/lm_generate.py `generate` (one left-padded prefill, one forward per decode step), and the
answers are runtime/tasks/language_modeling.py's, so a scored record equals the served request. Each
record is sampled with its own seed (`record_seed`: the job's `generation.seed` and the record id), so its
completion does not depend on the batch, shard or rerun it lands in. Perplexity: serving/scoring/perplexity.py.
"""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from core import export_dir
from runtime import lm_io
from runtime.handlers.text_generator import decode_text, load_decoder, load_tokenizer
from runtime.lm_generate import DecoderShape, generate
from runtime.preprocessing import BadInputError
from runtime.tasks import runtime_task
from serving.scoring.config import ModelLoadError, ScoringError
from serving.scoring.lm_options import GenerationOptions, PerplexityOptions

LM_TASK = "language_modeling"
# score.py task= → (the row of serving/scoring/kinds.py INPUT_KINDS, the name of the output columns)
JOBS = {None: ("prompt", LM_TASK), "generation": ("prompt", LM_TASK), "perplexity": ("document", "perplexity")}


class GenerationSettingsError(ScoringError):
    """A `generation.*` value the handler would refuse for every request."""


@dataclass(frozen=True)
class LMSpec:
    """What the scoring steps read of an LM job: the input kind (prompt | document)."""

    kind: str


@dataclass
class ScoringLM:
    """A loaded decoder export with the handler's tokenizer, decoder shape and this job's settings."""

    decoder: Any
    tokenizer: Any
    shape: DecoderShape
    spec: LMSpec
    name: str
    version: str
    model_file: Path
    fingerprint: str
    metadata: dict[str, Any]
    task: str  # whose output columns: language_modeling (runtime/tasks) or perplexity (serving/scoring/perplexity.py)
    generation: GenerationOptions = field(default_factory=GenerationOptions)
    perplexity: PerplexityOptions = field(default_factory=PerplexityOptions)
    limits: lm_io.GenerationLimits = field(default_factory=lm_io.GenerationLimits)
    device: torch.device = torch.device("cpu")  # runtime/lm_generate builds its tensors on the CPU

    def identity(self) -> dict[str, Any]:
        """What the output and `_SUCCESS.json` say about the model."""
        return {"name": self.name, "version": self.version, "file": self.model_file.name,
                "fingerprint": self.fingerprint, "metadata": self.metadata}

    def decode_text(self, ids: list[int]) -> str:
        """Token ids → text, exactly as the handler decodes a completion."""
        return decode_text(self.tokenizer, ids)

    @property
    def stride(self) -> int:
        """New tokens per perplexity window: `perplexity.stride`, else half the context."""
        return min(self.perplexity.stride or max(1, self.shape.max_seq_len // 2), self.shape.max_seq_len)


def load_language_model(folder: Path, metadata: dict[str, Any], device: str, job: Any = None) -> ScoringLM:
    """An LM export folder (or unpacked .mar) → ScoringLM, with the handler's loaders; `job`: the ScoreOptions."""
    from serving.scoring.model import file_sha256, model_name_version

    if device not in ("auto", "cpu"):
        raise ModelLoadError(f"device={device}: language-model jobs run on the CPU, where the text-generation "
                             "handler runs (runtime/lm_generate.py builds its tensors there); use device=cpu or auto")
    if "decoder" not in metadata:
        raise ModelLoadError(f"{folder}/metadata.json has no \"decoder\" section: re-export the run with export.py")
    task = getattr(job, "task", None)
    kind, columns = JOBS[task]
    model_file = next((folder / n for n in export_dir.MODEL_FILES if (folder / n).exists()), None)
    try:
        decoder, tokenizer = load_decoder(str(folder)), load_tokenizer(str(folder))
    except FileNotFoundError as err:
        raise ModelLoadError(str(err)) from None
    shape = DecoderShape.from_metadata(metadata["decoder"])
    name, version = model_name_version(folder, metadata)
    # a batch job's cap is the context itself (a served request's is the model-config YAML's)
    limits = lm_io.GenerationLimits(max_new_tokens_cap=max(lm_io.GenerationLimits.max_new_tokens_cap,
                                                           shape.max_seq_len))
    model = ScoringLM(decoder, tokenizer, shape, LMSpec(kind), name, version, model_file, file_sha256(model_file)[:16],
                      metadata, columns, getattr(job, "generation", None) or GenerationOptions(),
                      getattr(job, "perplexity", None) or PerplexityOptions(), limits)
    if kind == "prompt":
        PromptPreparer(model).check_settings()
    return model


def record_seed(base: int, record_id: str) -> int:
    """A record's sampling seed: blake2b of the job's seed and the record id (stable across machines and runs)."""
    digest = hashlib.blake2b(f"{base}\0{record_id}".encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & lm_io.MAX_SEED


class PromptPreparer:
    """(prompt, record id) → the handler's validated GenerationRequest; its refusal → BadInputError (picklable)."""

    def __init__(self, model: ScoringLM) -> None:
        self.tokenizer, self.limits, self.max_seq_len = model.tokenizer, model.limits, model.shape.max_seq_len
        self.fields, self.seed = model.generation.request_fields(), model.generation.seed

    def __call__(self, prompt: Any, record_id: str) -> lm_io.GenerationRequest:
        if prompt is None:
            raise BadInputError("missing prompt: the row has no value in the prompt column", code="missing_value")
        body = {**self.fields, "prompt": prompt, "seed": record_seed(self.seed, record_id)}
        try:
            request = lm_io.decode_request(body, self.tokenizer, self.limits, self.max_seq_len)
        except lm_io.GenerationRequestError as err:
            raise BadInputError(str(err), code=err.code, status=err.status) from None
        # no time budget in a batch job: a "time" finish would make the output depend on the machine's speed
        request.params = replace(request.params, time_budget_s=None)
        return request

    def check_settings(self) -> dict[str, Any]:
        """The job's settings through the handler's validation once, before any work (a bad one: exit 2)."""
        try:
            params = lm_io.decode_request({**self.fields, "prompt": "settings check", "seed": 0}, self.tokenizer,
                                          self.limits, self.max_seq_len).params
        except lm_io.GenerationRequestError as err:
            raise GenerationSettingsError(f"generation.{err.field}: {err} (the text-generation handler's rule)") \
                from None
        settings = {k: v for k, v in asdict(params).items() if k not in ("seed", "time_budget_s")}
        return {**settings, "stop": list(params.stop)}  # a list, as _plan.json reads it back


def job_settings(model: ScoringLM, opts: Any = None) -> dict[str, Any]:
    """What `_plan.json` pins for an LM job (a rerun with other sampling settings is refused)."""
    if model.spec.kind == "prompt":
        return {"task": "generation", "generation": {**PromptPreparer(model).check_settings(),
                                                     "seed": model.generation.seed}}
    return {"task": "perplexity", "stride": model.stride, "context": model.shape.max_seq_len}


def collate_requests(items: list[lm_io.GenerationRequest]) -> dict[str, Any]:
    """A batch of validated requests (generation decodes them together)."""
    return {"requests": items}


def generation_answers(model: ScoringLM, inputs: dict[str, Any], top_k: int = 0) -> list[dict[str, Any]]:
    """generate() on the batch's requests → the handler's answers {text, tokens, finish_reason, usage}."""
    requests = inputs["requests"]
    generations = generate(model.decoder, [r.prompt_ids for r in requests], [r.params for r in requests],
                           model.shape, partial(decode_text, model.tokenizer))
    return runtime_task(LM_TASK).answers(generations)


def prompt_warm_up(model: ScoringLM, batch_size: int) -> dict[str, Any]:
    """A real-shaped prefill and two decode steps (TorchScript profiles its first calls)."""
    request = PromptPreparer(model)("warm up", "warm-up")
    request.params = replace(request.params, max_new_tokens=2, stop=())
    return collate_requests([request] * batch_size)
