"""Text-generation requests and answers: validate one request on its own, format its answer or its error.

Request (JSON object): {"prompt": str, "max_new_tokens": int, "temperature": float, "top_p": float,
"top_k": int, "seed": int, "stop": str | [str], "stream": bool}; only "prompt" is required. Answer:
{"text", "tokens", "finish_reason", "usage": {"prompt_tokens", "completion_tokens"}}; a streamed request gets
chunks {"text", "tokens", "finish_reason": null} and, last, the delta with its finish_reason and usage.
A bad request raises `GenerationRequestError` naming the field (→ a 4xx {"error", "code", "field"}), so the
rest of its batch is answered. Stdlib + the `tokenizers` object handed in: ships in every .mar.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, fields
from itertools import accumulate
from typing import Any

from .lm_generate import Generation, SamplingParams

FIELDS = ("prompt", "max_new_tokens", "temperature", "top_p", "top_k", "seed", "stop", "stream")
BODY_KEYS = ("body", "data")
MAX_JSON_DEPTH = 8  # a request is a flat object (stop: one list): anything deeper is refused before parsing
MAX_SEED = 2 ** 63 - 1
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


class GenerationRequestError(ValueError):
    """One request cannot be served as sent: the message names the field and the fix."""

    def __init__(self, message: str, code: str, field: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.field, self.status = code, field, status

    def body(self) -> dict[str, Any]:
        """The JSON a refused request gets."""
        return {"error": str(self), "code": self.code, "field": self.field}


@dataclass
class GenerationLimits:
    """Serving limits (the archive's model-config YAML `generation:` section)."""

    max_new_tokens_cap: int = 256
    default_max_new_tokens: int = 64
    time_budget_s: float = 30.0
    max_prompt_bytes: int = 1_000_000
    max_stop_strings: int = 4
    max_stop_chars: int = 64
    max_temperature: float = 10.0

    @classmethod
    def from_yaml(cls, section: dict[str, Any] | None) -> "GenerationLimits":
        """Model-config YAML `generation:` → limits; unknown keys and non-positive values are errors."""
        data = dict(section or {})
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown generation keys {unknown} in the model-config YAML; known: {sorted(known)}")
        for key, value in data.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"generation.{key}={value!r}: must be a positive number")
        limits = cls(**data)
        if limits.default_max_new_tokens > limits.max_new_tokens_cap:
            raise ValueError(f"generation.default_max_new_tokens={limits.default_max_new_tokens} is above "
                             f"max_new_tokens_cap={limits.max_new_tokens_cap}")
        return limits


@dataclass
class GenerationRequest:
    """One validated request: the prompt, its token ids and its sampling settings."""

    prompt: str
    prompt_ids: list[int]
    params: SamplingParams
    stream: bool = False


def json_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in JSON text (brackets inside strings ignored)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(1 if c in "[{" else -1 for c in brackets), default=0)


def _reject_constant(name: str) -> None:
    raise GenerationRequestError(f"JSON contains {name}: numbers must be finite", "non_finite_number")


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def parse_body(request: Any, limits: GenerationLimits) -> dict[str, Any]:
    """TorchServe's request dict (or raw bytes/str/dict) → the JSON object, or an error naming the problem."""
    body = request
    if isinstance(request, dict) and any(k in request for k in BODY_KEYS):
        body = next(request[k] for k in BODY_KEYS if k in request)
    if body is None or body in (b"", ""):
        raise GenerationRequestError('empty request: send JSON {"prompt": "..."}', "empty_input")
    if isinstance(body, (bytes, bytearray)):
        if len(body) > limits.max_prompt_bytes + 4096:
            raise GenerationRequestError(f"request body too large: {len(body)} bytes, limit "
                                         f"{limits.max_prompt_bytes}", "too_large", None, 413)
        try:
            body = bytes(body).decode("utf-8")
        except UnicodeDecodeError as err:
            raise GenerationRequestError(f"request body is not valid UTF-8 ({err})", "bad_encoding") from err
    if isinstance(body, str):
        if json_depth(body) > MAX_JSON_DEPTH:
            raise GenerationRequestError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels: send a flat object "
                                         '{"prompt": ...}', "too_deep")
        try:
            body = json.loads(body, parse_constant=_reject_constant)
        except json.JSONDecodeError as err:
            raise GenerationRequestError(f'invalid JSON: {err.msg} at line {err.lineno} column {err.colno}; send '
                                         '{"prompt": "..."} with Content-Type application/json', "bad_json") from err
    elif _depth(body) > MAX_JSON_DEPTH:  # TorchServe parsed application/json bodies itself
        raise GenerationRequestError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "too_deep")
    if not isinstance(body, dict):
        raise GenerationRequestError(f'the body must be a JSON object {{"prompt": ...}}, got {type(body).__name__}',
                                     "wrong_shape")
    return body


def _int(body: dict[str, Any], name: str, low: int, high: int, default: int) -> int:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GenerationRequestError(f"{name} must be an integer, got {type(value).__name__}", "wrong_type", name)
    if not low <= value <= high:
        raise GenerationRequestError(f"{name}={value} is outside {low}..{high}", "bad_value", name)
    return value


def _float(body: dict[str, Any], name: str, low: float, high: float, default: float, open_low: bool = False) -> float:
    value = body.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GenerationRequestError(f"{name} must be a number, got {type(value).__name__}", "wrong_type", name)
    if not math.isfinite(value) or value > high or value < low or (open_low and value == low):
        bound = f"({low}, {high}]" if open_low else f"[{low}, {high}]"
        raise GenerationRequestError(f"{name}={value} must be within {bound}", "bad_value", name)
    return float(value)


def _stop(body: dict[str, Any], limits: GenerationLimits) -> tuple[str, ...]:
    value = body.get("stop", [])
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
        raise GenerationRequestError("stop must be a string or a list of strings", "wrong_type", "stop")
    if len(items) > limits.max_stop_strings:
        raise GenerationRequestError(f"stop has {len(items)} strings, limit {limits.max_stop_strings}", "bad_value",
                                     "stop")
    if any(not s or len(s) > limits.max_stop_chars for s in items):
        raise GenerationRequestError(f"each stop string must have 1..{limits.max_stop_chars} characters", "bad_value",
                                     "stop")
    return tuple(items)


def decode_request(request: Any, tokenizer: Any, limits: GenerationLimits, max_seq_len: int) -> GenerationRequest:
    """One request → GenerationRequest, or GenerationRequestError naming the first bad field."""
    body = parse_body(request, limits)
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise GenerationRequestError(f"unknown fields {unknown[:10]}; allowed: {list(FIELDS)}", "unknown_field",
                                     unknown[0])
    if "prompt" not in body:
        raise GenerationRequestError('the field "prompt" is required', "missing_field", "prompt")
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise GenerationRequestError(f"prompt must be a string, got {type(prompt).__name__}", "wrong_type", "prompt")
    if not prompt.strip():
        raise GenerationRequestError("prompt is empty: send some text to continue", "empty_input", "prompt")
    if len(prompt.encode("utf-8", "surrogatepass")) > limits.max_prompt_bytes:
        raise GenerationRequestError(f"prompt is over {limits.max_prompt_bytes} bytes", "too_large", "prompt", 413)
    if any(0xD800 <= ord(c) <= 0xDFFF for c in prompt):
        raise GenerationRequestError("prompt holds a lone UTF-16 surrogate: send valid Unicode text", "bad_encoding",
                                     "prompt")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise GenerationRequestError(f"stream must be true or false, got {type(stream).__name__}", "wrong_type",
                                     "stream")
    params = SamplingParams(
        max_new_tokens=_int(body, "max_new_tokens", 1, limits.max_new_tokens_cap, limits.default_max_new_tokens),
        temperature=_float(body, "temperature", 0.0, limits.max_temperature, 1.0),
        top_p=_float(body, "top_p", 0.0, 1.0, 1.0, open_low=True),
        top_k=_int(body, "top_k", 0, 1 << 30, 0),
        seed=None if body.get("seed") is None else _int(body, "seed", 0, MAX_SEED, 0),
        stop=_stop(body, limits), time_budget_s=limits.time_budget_s)
    ids = list(tokenizer.encode(prompt).ids)
    if not ids:
        raise GenerationRequestError("prompt tokenizes to no tokens", "empty_input", "prompt")
    if len(ids) >= max_seq_len:
        raise GenerationRequestError(f"prompt is {len(ids)} tokens, the model's context is {max_seq_len}: send at "
                                     f"most {max_seq_len - 1} tokens so one can be generated", "too_long", "prompt")
    return GenerationRequest(prompt, ids, params, stream)


def answer(generation: Generation) -> dict[str, Any]:
    """A finished generation → the JSON answer."""
    return {"text": generation.text, "tokens": generation.tokens, "finish_reason": generation.finish_reason,
            "usage": {"prompt_tokens": generation.prompt_tokens, "completion_tokens": generation.completion_tokens}}


def chunk(text: str, tokens: list[int], finish_reason: str | None = None,
          generation: Generation | None = None) -> dict[str, Any]:
    """One streamed chunk: the new text and token ids; the last one carries finish_reason and usage."""
    out: dict[str, Any] = {"text": text, "tokens": tokens, "finish_reason": finish_reason}
    if generation is not None:
        out["usage"] = answer(generation)["usage"]
    return out
