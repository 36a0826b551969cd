"""What every Shipyard handler sets on the final answers of a batch, for TorchServe's frontend to send them right.

TorchServe 0.12's gRPC StreamPredictions reads the `ts_stream_next` header of every final answer
(`GRPCJob.response`: `responseHeaders.get("ts_stream_next").equals("false")`); TorchServe's worker code only
sets it after an intermediate response. So a StreamPredictions call answered at once (a rejected request,
a request without "stream", a stream whose text is all held back) threw a NullPointerException in the
frontend: the worker was restarted and the call failed with "Worker died". Over HTTP the header must stay
absent on such answers (RestJob would treat the answer as the end of a stream it never began).
"""
from __future__ import annotations

from typing import Any

JSON = "application/json"
STREAM_NEXT = "ts_stream_next"


def over_grpc(context: Any, idx: int) -> bool:
    """True for a gRPC request: TorchServe hands a worker HTTP's request headers (a POST always carries
    Content-Length) but none for gRPC, where only the per-input content-type entries (dicts) are present."""
    try:
        headers = context.get_all_request_header(idx)
    except (AttributeError, IndexError, KeyError, TypeError):
        return False
    return not any(isinstance(value, str) for value in headers.values())


def finish_answers(context: Any, count: int, content_type: str = JSON) -> None:
    """Content type on all `count` answers; the end-of-stream header on gRPC answers that began no stream."""
    for idx in range(count):
        context.set_response_content_type(idx, content_type)
        if over_grpc(context, idx) and STREAM_NEXT not in (context.get_response_headers(idx) or {}):
            context.set_response_header(idx, STREAM_NEXT, "false")
