"""`predict`: one prediction from a file or a text, over REST (default) or gRPC, printed as JSON."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from serving.cli.common import print_json, serve_config, split_overrides
from serving.torchserve.client import ServingError
from serving.torchserve.server import TorchServeInstance

CONTENT_TYPES = {".json": "application/json", ".txt": "text/plain"}


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register predict."""
    p = subparsers.add_parser("predict", help="predict NAME [--version V] FILE|--text TEXT|--prompt TEXT [--stream] [key=value ...]")
    p.add_argument("name", help="served model name")
    p.add_argument("items", nargs="*", metavar="FILE|KEY=VALUE",
                   help="an input file (image bytes, .json or .txt) and/or ServeConfig overrides")
    p.add_argument("--version", help="pin a version instead of the default one")
    p.add_argument("--text", help="a text input, sent as JSON {\"text\": ...}")
    p.add_argument("--prompt", help="a language model's prompt, sent as JSON {\"prompt\": ...}")
    p.add_argument("--max-new-tokens", type=int, help="with --prompt: tokens to generate at most")
    p.add_argument("--temperature", type=float, help="with --prompt: 0 = greedy")
    p.add_argument("--seed", type=int, help="with --prompt: the same seed gives the same completion")
    p.add_argument("--stream", action="store_true", help="with --prompt: print the completion as it is generated")
    p.add_argument("--grpc", action="store_true", help="use TorchServe's gRPC inference API instead of REST")
    p.set_defaults(func=run_predict)


def prompt_body(args: argparse.Namespace) -> bytes:
    """--prompt and its sampling options as the text-generation JSON request."""
    body = {"prompt": args.prompt, "stream": bool(args.stream)}
    for key in ("max_new_tokens", "temperature", "seed"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    return json.dumps(body).encode()


def request_body(files: list[str], text: str | None) -> tuple[bytes, str]:
    """The body and content type for exactly one input: a file or --text."""
    if (text is None) == (len(files) != 1):
        raise ServingError(f"give exactly one input: a FILE, --text or --prompt (got files {files}, "
                           f"text={text is not None})")
    if text is not None:
        return json.dumps({"text": text}).encode(), "application/json"
    path = Path(files[0])
    if not path.is_file():
        raise ServingError(f"{path}: no such input file")
    return path.read_bytes(), CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")


def run_predict(args: argparse.Namespace) -> int:
    """Send the input; print the model's JSON answer (exit 0) or the error JSON (exit 1)."""
    overrides, files = split_overrides(args.items)
    args.overrides = overrides
    instance = TorchServeInstance(serve_config(args))
    if not instance.is_running():
        raise ServingError(f"no TorchServe running for {instance.dir}: `python -m serving start` first")
    if args.prompt is not None:
        if files or args.text is not None:
            raise ServingError("--prompt is the one input: drop the FILE / --text")
        body, content_type = prompt_body(args), "application/json"
        if args.stream:
            return _stream(instance, args.name, args.version, body, args.grpc)
    elif args.stream:
        raise ServingError("--stream needs --prompt (a language model)")
    else:
        body, content_type = request_body(files, args.text)
    if args.grpc:
        return _predict_grpc(instance, args.name, args.version, body)
    resp = instance.client().predict(args.name, body, version=args.version, content_type=content_type)
    try:
        answer = resp.json()
    except ValueError:
        answer = {"error": resp.text[:2000]}
    if resp.status_code == 413 and not resp.content:  # TorchServe's frontend refuses big bodies without a word
        limit = instance.setting("max_request_size") or instance.cfg.server.max_request_size
        answer = {"error": f"request body of {len(body)} bytes is larger than the server accepts "
                           f"(server.max_request_size={limit}); send a smaller input", "code": "too_large"}
    if resp.status_code >= 400:
        print_json({"status": resp.status_code, "error": answer})
        return 1
    print_json(answer)
    return 0


def _predict_grpc(instance: TorchServeInstance, name: str, version: str | None, body: bytes) -> int:
    import grpc

    from serving.torchserve.grpc_client import TorchServeGrpcClient, is_error_answer

    with TorchServeGrpcClient(instance.dir) as client:
        try:
            raw = client.predict(name, {"data": body}, version=version)
        except grpc.RpcError as err:
            print_json({"status": err.code().name, "error": err.details()})
            return 1
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = {"prediction": raw.decode(errors="replace")}
    if is_error_answer(answer):  # a refused input arrives with gRPC status OK (see serving.torchserve.grpc_client)
        print_json({"status": "refused", "error": answer})
        return 1
    print_json(answer)
    return 0


def _stream(instance: TorchServeInstance, name: str, version: str | None, body: bytes, grpc: bool) -> int:
    """Print each chunk's text as it arrives, then the final chunk (finish_reason, usage) as JSON."""
    import sys

    if grpc:
        from serving.torchserve.grpc_client import TorchServeGrpcClient

        with TorchServeGrpcClient(instance.dir) as client:
            chunks = [json.loads(part) for part in client.stream(name, {"data": body}, version=version)]
    else:
        chunks = (chunk for _, chunk in instance.client().predict_stream(name, body, version=version))
    last: dict = {}
    for chunk in chunks:
        if "error" in chunk:
            print_json({"status": "refused", "error": chunk})
            return 1
        sys.stdout.write(chunk.get("text", ""))
        sys.stdout.flush()
        last = chunk
    sys.stdout.write("\n")
    print_json({"finish_reason": last.get("finish_reason"), "usage": last.get("usage")})
    return 0
