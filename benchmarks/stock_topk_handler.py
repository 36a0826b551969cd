"""The stock baseline answering as Shipyard's handler does: the same BaseHandler and preprocess as
benchmarks/stock_handler.py, but a top-5 softmax answer as a JSON string with its content type. Beside the
bare stock row it shows what the answer itself costs (a bigger body through the worker and the frontend)."""
from __future__ import annotations

import json

import torch
from stock_handler import StockDigitsHandler  # shipped beside this file in the archive (--extra-files)

TOP_K = 5  # Shipyard's default top_k


class StockTopKHandler(StockDigitsHandler):
    """StockDigitsHandler with `{"label", "probability", "top_k": [...]}` answers (application/json)."""

    def postprocess(self, data: torch.Tensor) -> list[str]:
        values, indices = torch.softmax(data.float(), dim=1).topk(min(TOP_K, data.shape[1]), dim=1)
        answers = []
        for i, (probabilities, labels) in enumerate(zip(values.tolist(), indices.tolist())):
            top = [{"label": str(label), "probability": p} for label, p in zip(labels, probabilities)]
            answers.append(json.dumps({"label": top[0]["label"], "probability": top[0]["probability"], "top_k": top}))
            self.context.set_response_content_type(i, "application/json")
        return answers
