"""Language modeling in the runtime: its handler, answers {text, tokens, finish_reason, usage} and scoring's columns."""
from __future__ import annotations

from typing import Any, Sequence

from .. import lm_io
from ..lm_generate import Generation

HANDLER_FILES = {"text": "text_generator.py"}
SCORE_COLUMNS = (("text", "string"), ("finish_reason", "string"), ("prompt_tokens", "int64"),
                 ("completion_tokens", "int64"))


def answers(outputs: Sequence[Generation], spec: Any = None,
            top_ks: Sequence[int | None] | int | None = None) -> list[dict[str, Any]]:
    """Finished generations → one answer per prompt (what the handler returns)."""
    return [lm_io.answer(g) for g in outputs]


def score_columns(answer: dict[str, Any]) -> dict[str, Any]:
    """One answer → text, finish_reason, prompt_tokens, completion_tokens."""
    return {"text": answer["text"], "finish_reason": answer["finish_reason"],
            "prompt_tokens": int(answer["usage"]["prompt_tokens"]),
            "completion_tokens": int(answer["usage"]["completion_tokens"])}
