"""TorchServe handler for Shipyard language models: JSON {"prompt", ...} → {"text", "tokens", "finish_reason", "usage"}.

Every request of a dynamic batch is validated on its own (runtime/lm_io.py): a bad one gets a 4xx JSON
{"error", "code", "field"} while the rest are generated together (runtime/lm_generate.py: one left-padded
prefill, one forward per decode step for the whole batch). A request with "stream": true gets a chunk per
decode step through TorchServe's intermediate responses (HTTP chunked transfer, gRPC StreamPredictions)
and its final delta as the response: one JSON object per line. One class in this file (TorchServe's rule).
"""
from __future__ import annotations

import json
import logging
import os
import time
from typing import Any

import torch

from .. import lm_io
from ..answers import JSON, finish_answers
from ..lm_generate import DecoderShape, Generation, generate
from ..model_loading import MODEL_FILE, load_model
from ..pii import redact
from ..prediction_log import PredictionLogger

logger = logging.getLogger(__name__)
BATCH_LOG = "text generation batch: size=%d valid=%d streaming=%d"  # tests read the batch sizes from it


def load_decoder(model_dir: str) -> Any:
    """model.pt (TorchScript) if the archive has it, else model.pt2 (torch.export), on the CPU."""
    pt2 = os.path.join(model_dir, "model.pt2")
    if os.path.isfile(os.path.join(model_dir, MODEL_FILE)):
        return load_model(model_dir)
    if os.path.isfile(pt2):
        return torch.export.load(pt2).module()
    raise FileNotFoundError(f"{model_dir} has neither model.pt nor model.pt2: export the run with export.py")


def load_tokenizer(model_dir: str) -> Any:
    """tokenizer.json (the `tokenizers` library: no transformers on the serving host)."""
    from tokenizers import Tokenizer

    for path in (os.path.join(model_dir, "tokenizer.json"), os.path.join(model_dir, "tokenizer", "tokenizer.json")):
        if os.path.isfile(path):
            return Tokenizer.from_file(path)
    raise FileNotFoundError(f"{model_dir} has no tokenizer.json: export the run with export.py")


def decode_text(tokenizer: Any, ids: list[int]) -> str:
    """Token ids → text, special tokens dropped (the handler's decoding; batch generation imports it)."""
    return tokenizer.decode(ids, skip_special_tokens=True)


class TextGeneratorHandler:
    """`initialize(context)` once per worker, `handle(data, context)` per dynamic batch."""

    def __init__(self) -> None:
        self.initialized = False
        self.decoder: Any = None
        self.tokenizer: Any = None
        self.shape: DecoderShape | None = None
        self.limits = lm_io.GenerationLimits()
        self.log: PredictionLogger | None = None

    def initialize(self, context: Any) -> None:
        """Load metadata.json's decoder shape, the tokenizer, the exported decoder and the serving limits."""
        model_dir = context.system_properties.get("model_dir")
        with open(os.path.join(model_dir, "metadata.json"), encoding="utf-8") as f:
            metadata = json.load(f)
        if metadata.get("task") != "language_modeling" or "decoder" not in metadata:
            raise ValueError(f"TextGeneratorHandler serves language models, but {model_dir}/metadata.json says "
                             f"task={metadata.get('task')!r}: package the run with its own task's handler")
        self.shape = DecoderShape.from_metadata(metadata["decoder"])
        self.limits = lm_io.GenerationLimits.from_yaml((getattr(context, "model_yaml_config", None) or {})
                                                       .get("generation"))
        self.tokenizer = load_tokenizer(model_dir)
        self.decoder = load_decoder(model_dir)
        self.log = PredictionLogger.from_context(context)
        self.initialized = True
        logger.info("TextGeneratorHandler: decoder %s loaded from %s", self.shape, model_dir)

    def decode_text(self, ids: list[int]) -> str:
        """Token ids → text, special tokens dropped."""
        return decode_text(self.tokenizer, ids)

    def handle(self, data: list[Any], context: Any) -> list[str]:
        """Validate each request, generate for the good ones together (streaming those that asked), answer all."""
        started = time.perf_counter()
        answers: list[str | None] = [None] * len(data)
        good: list[tuple[int, lm_io.GenerationRequest]] = []
        for idx, request in enumerate(data):
            try:
                good.append((idx, lm_io.decode_request(request, self.tokenizer, self.limits, self.shape.max_seq_len)))
            except lm_io.GenerationRequestError as err:
                answers[idx] = self._refuse(context, idx, err.status, err.body())
        streaming = {n: idx for n, (idx, req) in enumerate(good) if req.stream}
        logger.info(BATCH_LOG, len(data), len(good), len(streaming))
        finals: dict[int, tuple[str, list[int]]] = {}

        def on_delta(n: int, text: str, tokens: list[int], finish: str | None) -> None:
            if n not in streaming:
                return
            if finish is not None:
                finals[n] = (text, tokens)  # the last delta travels as the response itself
            else:
                pending[streaming[n]] = json.dumps(lm_io.chunk(text, tokens)) + "\n"  # JSON lines

        pending: dict[int, str] = {}

        def flush_step() -> None:
            if pending:
                self.send_intermediate(context, dict(pending))
                pending.clear()

        generations: list[Generation] = []
        # drawn before generating: only the logged prompts get their NLL computed from the prefill
        logged = [n for n in range(len(good)) if self.log is not None and self.log.sampled()]
        if good:
            generations = generate(self.decoder, [r.prompt_ids for _, r in good], [r.params for _, r in good],
                                   self.shape, self.decode_text, on_delta if streaming else None,
                                   on_step=flush_step if streaming else None, nll_rows=logged)
        for n, ((idx, req), gen) in enumerate(zip(good, generations)):
            if req.stream:
                text, tokens = finals.get(n, ("", []))
                answers[idx] = json.dumps(lm_io.chunk(text, tokens, gen.finish_reason, gen)) + "\n"
            else:
                answers[idx] = json.dumps(lm_io.answer(gen))
        finish_answers(context, len(data))
        self._log_predictions(context, [(good[n], generations[n]) for n in logged],
                              (time.perf_counter() - started) * 1000.0)
        return answers  # type: ignore[return-value]

    def send_intermediate(self, context: Any, chunks: dict[int, str]) -> None:
        """One decode step's chunks → TorchServe's intermediate response frame (only the streaming requests)."""
        from ts.handler_utils.utils import send_intermediate_predict_response

        ids = getattr(context, "request_ids", None) or {}
        ret = [chunks.get(i, "") for i in range(max(chunks) + 1)]
        for idx in chunks:
            context.set_response_content_type(idx, JSON)
        send_intermediate_predict_response(ret, {i: ids[i] for i in chunks if i in ids}, "Intermediate Prediction "
                                           "success", 200, context)

    def _log_predictions(self, context: Any, logged: list[tuple[tuple[int, lm_io.GenerationRequest], Generation]],
                         latency_ms: float) -> None:
        """The sampled records: prompt and completion lengths, prompt NLL, PII-redacted text; never fails a request."""
        if self.log is None:
            return
        ids = getattr(context, "request_ids", None) or {}
        for (idx, req), gen in logged:
            features = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                        "prompt_chars": len(req.prompt), "completion_chars": len(gen.text),
                        "prompt_nll": gen.prompt_nll}
            limit = self.log.settings.max_text_chars
            self.log.log("text_generation", features, gen.finish_reason, 1.0, latency_ms, text=req.prompt,
                         extra={"request_id": ids.get(idx), "completion": redact(gen.text[:limit])})

    @staticmethod
    def _refuse(context: Any, idx: int, status: int, body: dict[str, Any]) -> str:
        # the reason phrase travels in the HTTP status line: keep it ASCII and short; the body has it all
        phrase = str(body["error"]).encode("ascii", "backslashreplace").decode()[:200]
        context.set_response_status(status, phrase, idx)
        return json.dumps(body)
