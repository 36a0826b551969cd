"""Request decoding, batching and answers of Shipyard's handlers: the functions batch scoring reuses.

Ships inside every `.mar` in the `runtime/` package (TorchServe allows one class per handler file, so
helpers live in their own modules). Imports only the standard library, torch, PIL (through
`preprocessing`) and, for text, the tokenizer library that `preprocessing.load_tokenizer` picks.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import math
import re
from itertools import accumulate
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from . import preprocessing as pp

BadInputError = pp.BadInputError
PreprocessSpec = pp.PreprocessSpec
DEFAULT_TOP_K = 5
BODY_KEYS = ("body", "data", "file")  # raw POST body, multipart field names TorchServe passes on
# JSON keys that carry the input, per kind
IMAGE_JSON_KEYS = ("image", "data")
TEXT_JSON_KEYS = ("text",)
# JSON bodies are bounded before parsing: Python's json recursion ends in RecursionError (a 500) near
# depth 1000, and our requests are objects of scalars (depth 1-2)
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 16 * 1024 * 1024
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


@dataclass
class Decoded:
    """One request after validation: the model-ready item plus its per-request options."""

    value: Any  # image: CxHxW tensor; text: the cleaned string
    top_k: int | None = None
    raw: Any = None  # image: the decoded PIL image; text: the string (for the prediction-logging hook)


# ----------------------------------------------------------------------------- request bodies
def _reject_constant(name: str) -> None:
    raise BadInputError(f"JSON contains {name}: numbers must be finite", code="non_finite_number")


def json_depth(text: str) -> int:
    """The deepest nesting of arrays/objects in JSON text (brackets inside strings ignored)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    if not brackets:
        return 0
    return max(accumulate(1 if c in "[{" else -1 for c in brackets))


def parse_json(data: bytes | bytearray | str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Strict JSON (NaN/Infinity refused, size and nesting bounded first), or BadInputError naming the problem."""
    if len(data) > max_bytes:
        raise BadInputError(f"JSON body too large: {len(data)} bytes, limit {max_bytes}", code="too_large",
                            status=413)
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as err:
        raise BadInputError(f"JSON body is not valid UTF-8 ({err})", code="bad_encoding") from err
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise BadInputError(f"JSON nested {depth} levels deep, limit {MAX_JSON_DEPTH}: send a flat object "
                            "such as {\"text\": ...}", code="too_deep")
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise BadInputError(f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}",
                            code="bad_json") from err
    except RecursionError as err:  # unreachable below MAX_JSON_DEPTH; kept so no parse failure is a 500
        raise BadInputError("JSON nested too deeply", code="too_deep") from err


def check_content_type(request: Any, content_type: str | None) -> None:
    """Form bodies reach the handler as form fields, not as the body: name the problem and the fix."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind not in FORM_TYPES:
        return
    if isinstance(request, dict) and any(request.get(k) for k in BODY_KEYS):
        return  # a multipart upload with a file/data field: that field is the input
    raise BadInputError(
        f"Content-Type {kind} is not accepted: TorchServe splits form bodies into fields, so the input is lost. "
        "Send the raw input with Content-Type application/json ({\"text\": ...} / {\"image\": base64}), "
        "text/plain or image/*, e.g. curl -H 'Content-Type: text/plain' --data-binary 'some text' URL",
        code="unsupported_content_type", status=415)


def request_body(request: Any) -> Any:
    """The payload TorchServe hands over for one request (raw body or first known multipart field)."""
    if not isinstance(request, dict):
        return request
    for key in BODY_KEYS:
        if key in request and request[key] is not None:
            return request[key]
    if len(request) == 1:  # a multipart upload under another field name
        return next(iter(request.values()))
    raise BadInputError("empty request: no body (send the input as the request body)", code="empty_input")


def _looks_like_json(data: bytes | bytearray) -> bool:
    head = bytes(data[:64]).lstrip()
    return head[:1] in (b"{", b"[")


def _check_finite(value: Any, where: str = "body", depth: int = 0) -> None:
    """TorchServe's worker json.loads() bodies itself and lets NaN/Infinity through: refuse them here."""
    if depth > MAX_JSON_DEPTH:  # TorchServe parsed it (depth < ~1000): still bounded before recursing on
        raise BadInputError(f"JSON nested more than {MAX_JSON_DEPTH} levels deep: send a flat object",
                            code="too_deep")
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInputError(f"JSON {where} contains {value}: numbers must be finite", code="non_finite_number")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"field {key!r}", depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_finite(item, where, depth + 1)


def _top_k(obj: dict[str, Any], spec: PreprocessSpec) -> int | None:
    if "top_k" not in obj:
        return None
    k = obj["top_k"]
    if isinstance(k, bool) or not isinstance(k, int):
        raise BadInputError(f"top_k must be an integer, got {type(k).__name__}", code="wrong_type")
    if not 1 <= k <= len(spec.labels):
        raise BadInputError(f"top_k must be between 1 and {len(spec.labels)}, got {k}", code="bad_value")
    return k


def _json_object(value: Any, keys: Sequence[str], spec: PreprocessSpec) -> tuple[Any, int | None]:
    """A parsed JSON body → (the input field, top_k); wrong shapes named."""
    _check_finite(value)
    if not isinstance(value, dict):
        raise BadInputError(f"JSON body must be an object like {{\"{keys[0]}\": ...}}, got {type(value).__name__}",
                            code="wrong_shape")
    present = [k for k in keys if k in value]
    if not present:
        raise BadInputError(f"JSON object needs the field {' or '.join(repr(k) for k in keys)}; "
                            f"got {sorted(value)[:10]}", code="missing_field")
    allowed = set(keys) | {"top_k"}
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise BadInputError(f"unknown JSON fields {unknown[:10]}; allowed: {sorted(allowed)}", code="unknown_field")
    return value[present[0]], _top_k(value, spec)


def _b64_image(value: Any) -> bytes:
    if not isinstance(value, str):
        raise BadInputError(f"image must be a base64 string, got {type(value).__name__}", code="wrong_type")
    if value.startswith("data:") and "," in value:  # data URL: data:image/png;base64,....
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadInputError(f"image is not valid base64 ({err})", code="bad_base64") from err


def decode_image_request(request: Any, spec: PreprocessSpec) -> Decoded:
    """One image request (raw PNG/JPEG bytes, or JSON {"image"|"data": base64}) → Decoded tensor."""
    body = request_body(request)
    top_k = None
    if isinstance(body, (bytes, bytearray)) and _looks_like_json(body):
        body = parse_json(body)  # TorchServe could not parse it (or it came without a JSON content type)
    if isinstance(body, str):
        body = parse_json(body) if body.lstrip()[:1] in ("{", "[") else body
    if isinstance(body, str):
        raise BadInputError("expected image bytes or JSON {\"image\": base64}, got plain text", code="wrong_type")
    if not isinstance(body, (bytes, bytearray)):
        field, top_k = _json_object(body, IMAGE_JSON_KEYS, spec)
        body = _b64_image(field)
    image = pp.decode_image(bytes(body), spec)
    return Decoded(pp.image_to_tensor(image, spec), top_k, image)


def decode_text_request(request: Any, spec: PreprocessSpec) -> Decoded:
    """One text request (JSON {"text": ...} or a plain-text body) → Decoded cleaned string."""
    body = request_body(request)
    top_k = None
    # TorchServe hands text/* bodies over as str (plain text, whatever they start with) and JSON bodies
    # as parsed objects; bytes are JSON it could not parse, non-UTF-8 text, or other content types
    if isinstance(body, (bytes, bytearray)):
        if _looks_like_json(body):
            body = parse_json(body)
        else:
            body = pp.clean_text(bytes(body), spec)  # names non-UTF-8 / empty / oversized bodies
    if not isinstance(body, str):
        field, top_k = _json_object(body, TEXT_JSON_KEYS, spec)
        body = field
    text = pp.clean_text(body, spec)
    return Decoded(text, top_k, text)


# ----------------------------------------------------------------------------- batches
def collate_images(values: Sequence[torch.Tensor]) -> dict[str, torch.Tensor]:
    """Preprocessed image tensors → the net's keyword inputs."""
    return {"pixel_values": torch.stack(list(values))}


def collate_texts(texts: Sequence[str], tokenizer: Any, spec: PreprocessSpec,
                  padding: str = "max_length") -> dict[str, torch.Tensor]:
    """Cleaned texts → input_ids/attention_mask, tokenised as in training (padding: see pp.tokenize)."""
    return pp.tokenize(list(texts), tokenizer, spec, padding)


def predict_batch(model: Callable[..., torch.Tensor], inputs: dict[str, torch.Tensor],
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """One forward pass over a whole batch → logits on the CPU (text: input_ids, attention_mask order)."""
    order = ("input_ids", "attention_mask") if "input_ids" in inputs else ("pixel_values",)
    args = [inputs[name].to(device) for name in order]
    with torch.inference_mode():
        return model(*args).float().cpu()


def format_predictions(logits: torch.Tensor, spec: PreprocessSpec,
                       top_ks: Sequence[int | None] | int | None = None) -> list[dict[str, Any]]:
    """Logits → one JSON-ready answer per row: label, probability, top_k list (temperature applied)."""
    rows = logits.shape[0]
    ks = [top_ks] * rows if top_ks is None or isinstance(top_ks, int) else list(top_ks)
    widest = max((k or DEFAULT_TOP_K) for k in ks) if rows else DEFAULT_TOP_K
    answers = pp.postprocess(logits, spec, top_k=widest)
    for answer, k in zip(answers, ks):
        answer["top_k"] = answer["top_k"][: (k or DEFAULT_TOP_K)]
    return answers


@functools.lru_cache(maxsize=4096)
def _json_string(label: str) -> str:
    return json.dumps(label)


def answer_json(answer: dict[str, Any]) -> str:
    """`json.dumps(answer)` of a `format_predictions` answer, byte for byte, at ~half its cost."""
    top = answer["top_k"]
    numbers = [answer["probability"], *(item["probability"] for item in top)]
    if answer.keys() != {"label", "probability", "top_k"} or not all(
            type(p) is float and math.isfinite(p) for p in numbers):
        return json.dumps(answer)  # any other shape (or NaN) as the generic encoder writes it
    # labels are encoded once (cached); floats as json writes them (float.__repr__)
    items = ", ".join(f'{{"label": {_json_string(item["label"])}, "probability": {item["probability"]!r}}}'
                      for item in top)
    return (f'{{"label": {_json_string(answer["label"])}, "probability": {answer["probability"]!r}, '
            f'"top_k": [{items}]}}')


def error_body(err: BadInputError) -> dict[str, Any]:
    """The JSON a refused request gets."""
    return {"error": str(err), "code": getattr(err, "code", "bad_input")}
