"""Request decoding, batching and answers of Shipyard's handlers: the functions batch scoring reuses.

Ships inside every `.mar` in the `runtime/` package (TorchServe allows one class per handler file, so
helpers live in their own modules). Imports only the standard library, torch, PIL (through
`preprocessing`) and, for text, the tokenizer library that `preprocessing.load_tokenizer` picks.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from . import preprocessing as pp

BadInputError = pp.BadInputError
PreprocessSpec = pp.PreprocessSpec
MODEL_FILE = "model.pt"
DEFAULT_TOP_K = 5
BODY_KEYS = ("body", "data", "file")  # raw POST body, multipart field names TorchServe passes on
# JSON keys that carry the input, per kind
IMAGE_JSON_KEYS = ("image", "data")
TEXT_JSON_KEYS = ("text",)


@dataclass
class Decoded:
    """One request after validation: the model-ready item plus its per-request options."""

    value: Any  # image: CxHxW tensor; text: the cleaned string
    top_k: int | None = None
    raw: Any = None  # image: the decoded PIL image; text: the string (for the prediction-logging hook)


# ----------------------------------------------------------------------------- request bodies
def _reject_constant(name: str) -> None:
    raise BadInputError(f"JSON contains {name}: numbers must be finite", code="non_finite_number")


def parse_json(data: bytes | bytearray | str) -> Any:
    """Strict JSON (NaN/Infinity refused), or BadInputError naming the parse problem."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
    except UnicodeDecodeError as err:
        raise BadInputError(f"JSON body is not valid UTF-8 ({err})", code="bad_encoding") from err
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise BadInputError(f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}",
                            code="bad_json") from err


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


def _check_finite(value: Any, where: str = "body") -> None:
    """TorchServe's worker json.loads() bodies itself and lets NaN/Infinity through: refuse them here."""
    if isinstance(value, float) and not math.isfinite(value):
        raise BadInputError(f"JSON {where} contains {value}: numbers must be finite", code="non_finite_number")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"field {key!r}")
    elif isinstance(value, list):
        for item in value:
            _check_finite(item, where)


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


def collate_texts(texts: Sequence[str], tokenizer: Any, spec: PreprocessSpec) -> dict[str, torch.Tensor]:
    """Cleaned texts → input_ids/attention_mask, tokenised exactly as in training."""
    return pp.tokenize(list(texts), tokenizer, spec)


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


def error_body(err: BadInputError) -> dict[str, Any]:
    """The JSON a refused request gets."""
    return {"error": str(err), "code": getattr(err, "code", "bad_input")}


# ----------------------------------------------------------------------------- loading
def load_spec(model_dir: str | Path) -> PreprocessSpec:
    """preprocess.json of an export folder or extracted .mar (tokenizer_dir resolved against it)."""
    model_dir = Path(model_dir)
    spec = PreprocessSpec.load(model_dir / pp.SPEC_FILENAME)
    if spec.tokenizer_dir and not Path(spec.tokenizer_dir).is_absolute():
        spec.tokenizer_dir = str(model_dir / spec.tokenizer_dir)
    return spec


def load_model(model_dir: str | Path, device: torch.device | str = "cpu") -> torch.jit.ScriptModule:
    """The TorchScript model of an export folder or extracted .mar, in eval mode."""
    path = Path(model_dir) / MODEL_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the archive was not built by `python export.py`")
    model = torch.jit.load(str(path), map_location=device)
    return model.eval()


def device_for(context: Any) -> torch.device:
    """The GPU TorchServe assigned to this worker, else the CPU."""
    gpu_id = (getattr(context, "system_properties", None) or {}).get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")

