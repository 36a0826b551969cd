"""What batch scoring does differently per input kind (preprocess.json "kind"), in one explicit table.

Each row is the handler's own steps for that kind: a record → one prepared item (image bytes decoded, text
cleaned, a table row encoded), items → the net's input tensors, one forward → the answers the handler
returns. What the answers hold is the task's (runtime/tasks/); a new input kind is one row here.
A language model's jobs are two kinds (serving/scoring/lm.py picks one from score.py's task=): "prompt"
(generation with the text-generation handler's code) and "document" (serving/scoring/perplexity.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch

from runtime import classifier_io as handler_io
from runtime.tasks import runtime_task
from serving.scoring.config import ModelLoadError
from serving.scoring import lm, perplexity
from serving.scoring.inputs import RejectMissingText

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class InputKind:
    """One input kind's steps; each takes the loaded ScoringModel."""

    preparer: Callable[[Any], Callable[[Any], Any]]             # model → (record → item); BadInputError says why not
    collate: Callable[[Any], Callable[[list[Any]], Batch]]      # model → (items → input tensors)
    answers: Callable[[Any, Batch, int], list[dict[str, Any]]]  # (model, inputs, top_k) → one answer per row
    warm_up_inputs: Callable[[Any, int], Batch]                 # (model, batch size) → a real-shaped batch
    # what _plan.json pins besides input/model/shards (model, ScoreOptions) → dict: a rerun must match it
    settings: Callable[[Any, Any], dict[str, Any]] = lambda model, opts: {"top_k": opts.top_k}
    with_id: bool = False  # the preparer takes (value, record id): a prompt's seed derives from its id


def decode_image_file(data: bytes, spec: handler_io.PreprocessSpec) -> torch.Tensor:
    """Image file bytes → normalised tensor (only the tensor travels back from the worker)."""
    return handler_io.decode_image_request(data, spec).value


def task_answers(model: Any, inputs: Batch, top_k: int) -> list[dict[str, Any]]:
    """One forward + the task's answers (classification: label, probability, top_k), as the handler gives them."""
    return runtime_task(model.task).answers(model(inputs), model.spec, top_k)


def _image_warm_up(model: Any, batch_size: int) -> Batch:
    channels, (height, width) = model.spec.channels, model.spec.image_size
    return handler_io.collate_images([torch.zeros(channels, height, width)] * batch_size)


def _text_collate(model: Any) -> Callable[[list[Any]], Batch]:
    return partial(handler_io.collate_texts, tokenizer=model.tokenizer, spec=model.spec, padding=model.padding)


# tabular: serving/scoring/tabular.py (imported on use: it reads tables with the training code's reader)
def _tabular_preparer(model: Any) -> Callable[[Any], Any]:
    from serving.scoring.tabular import TabularPreparer

    return TabularPreparer(model.spec)


def _tabular_collate(model: Any) -> Callable[[list[Any]], Batch]:
    from serving.scoring.tabular import collate_rows

    return collate_rows


def _tabular_answers(model: Any, inputs: Batch, top_k: int) -> list[dict[str, Any]]:
    from serving.scoring.tabular import tabular_predictions  # x_num + x_cat in; runtime/tabular_io's answers

    return tabular_predictions(model.net, inputs, model.spec, top_k, model.device)


def _tabular_warm_up(model: Any, batch_size: int) -> Batch:
    from serving.scoring.tabular import tabular_spec

    table = tabular_spec(model.spec)
    return {"x_num": torch.zeros(batch_size, table.num_numeric_inputs),
            "x_cat": torch.zeros(batch_size, len(table.categorical), dtype=torch.long)}


INPUT_KINDS: dict[str, InputKind] = {
    "image": InputKind(lambda m: partial(decode_image_file, spec=m.spec), lambda m: handler_io.collate_images,
                       task_answers, _image_warm_up),
    "text": InputKind(lambda m: RejectMissingText(partial(handler_io.pp.clean_text, spec=m.spec)), _text_collate,
                      task_answers, lambda m, n: _text_collate(m)(["warm up"] * n)),
    "tabular": InputKind(_tabular_preparer, _tabular_collate, _tabular_answers, _tabular_warm_up),
    "prompt": InputKind(lm.PromptPreparer, lambda m: lm.collate_requests, lm.generation_answers, lm.prompt_warm_up,
                        lm.job_settings, with_id=True),
    "document": InputKind(perplexity.DocumentPreparer, lambda m: perplexity.collate_documents,
                          perplexity.perplexity_answers, perplexity.document_warm_up, lm.job_settings),
}


def input_kind(model: Any) -> InputKind:
    """The row of the model's input kind; an unknown kind is a ModelLoadError naming the ones scoring reads."""
    kind = model.spec.kind
    if kind not in INPUT_KINDS:
        raise ModelLoadError(f"score.py reads {', '.join(INPUT_KINDS)} models; this export's preprocess.json has "
                             f"kind={kind!r}")
    return INPUT_KINDS[kind]
