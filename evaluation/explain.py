"""Explanations with Captum: Integrated Gradients (gradient view) and KernelShap (model-agnostic view).

Images: IG on pixel_values against a black (zero-intensity) baseline; KernelShap over square patches.
Text: LayerIntegratedGradients on the word embeddings against a [PAD] baseline (special tokens kept);
KernelShap over token positions (a removed token becomes [PAD]). Both give top-attributed tokens.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from captum.attr import IntegratedGradients, KernelShap, LayerIntegratedGradients

from core.figures import new_figure, save_png

if TYPE_CHECKING:
    from evaluation.predictions import EvaluationData


def patch_mask(height: int, width: int, patches_per_side: int) -> torch.Tensor:
    """H x W feature ids: a grid of patches_per_side² square-ish patches (KernelShap's features)."""
    rows = torch.clamp(torch.arange(height) * patches_per_side // height, max=patches_per_side - 1)
    cols = torch.clamp(torch.arange(width) * patches_per_side // width, max=patches_per_side - 1)
    return rows[:, None] * patches_per_side + cols[None, :]


def _image_baseline(data: "EvaluationData", like: torch.Tensor) -> torch.Tensor:
    spec = data.datamodule.preprocess_spec()
    mean = torch.tensor(spec.mean).view(1, -1, 1, 1)
    std = torch.tensor(spec.std).view(1, -1, 1, 1)
    return ((torch.zeros_like(like) - mean) / std).expand_as(like).contiguous()  # raw intensity 0 after normalisation


def explain_images(data: "EvaluationData", indices: list[int], cfg: Any, out_dir: Path) -> dict[str, Any]:
    """IG and KernelShap attributions for some test images; one overlay PNG with a row per sample."""
    inputs = data.model_inputs("test", indices)["pixel_values"]
    targets = data.outputs["test"].preds[indices]
    baseline = _image_baseline(data, inputs)
    net = data.net
    ig = IntegratedGradients(lambda x: net(pixel_values=x))
    ig_attr, delta = ig.attribute(inputs, baselines=baseline, target=targets, n_steps=cfg.ig_steps,
                                  return_convergence_delta=True)
    _, channels, height, width = inputs.shape
    mask = patch_mask(height, width, cfg.shap_patches_per_side).expand(1, channels, height, width)
    shap = KernelShap(lambda x: net(pixel_values=x).softmax(-1))
    shap_attr = torch.cat([shap.attribute(inputs[i:i + 1], baselines=baseline[i:i + 1], target=int(targets[i]),
                                          feature_mask=mask, n_samples=cfg.shap_samples,
                                          perturbations_per_eval=cfg.shap_samples) for i in range(len(indices))])
    raw = data.raw_pixels("test")[indices]
    path = _plot_image_attributions(raw, ig_attr.sum(1).numpy(), shap_attr.sum(1).numpy(), indices, data, out_dir)
    return {"method": ["IntegratedGradients", "KernelShap"], "samples": len(indices), "ig_steps": cfg.ig_steps,
            "shap_samples": cfg.shap_samples, "shap_features": f"{cfg.shap_patches_per_side}x{cfg.shap_patches_per_side} patches",
            "ig_convergence_delta_max": float(delta.abs().max()), "figures": {"attributions": path.name}}


def _plot_image_attributions(raw: np.ndarray, ig: np.ndarray, shap: np.ndarray, indices: list[int],
                             data: "EvaluationData", out_dir: Path) -> Path:
    fig, axes = new_figure(7.5, 2.4 * len(indices), len(indices), 3)
    axes = np.atleast_2d(axes)
    out = data.outputs["test"]
    for row, i in enumerate(indices):
        image = raw[row].transpose(1, 2, 0).squeeze(-1) if raw.shape[1] == 1 else raw[row].transpose(1, 2, 0)
        cmap = "gray" if image.ndim == 2 else None
        title = f"true {data.labels[int(out.labels[i])]} / pred {data.labels[int(out.preds[i])]}"
        for col, (attr, name) in enumerate(((None, title), (ig[row], "Integrated Gradients"), (shap[row], "KernelShap"))):
            ax = axes[row, col]
            ax.imshow(image, cmap=cmap)
            if attr is not None:
                bound = float(np.abs(attr).max()) or 1.0
                ax.imshow(attr, cmap="bwr", vmin=-bound, vmax=bound, alpha=0.6)
            ax.set_title(name, fontsize=8)
            ax.axis("off")
    return save_png(fig, out_dir / "explanations.png")


def _tokens(data: "EvaluationData", ids: torch.Tensor) -> list[str]:
    return data.datamodule.tokenizer.convert_ids_to_tokens(ids.tolist())


def _top_tokens(tokens: list[str], scores: np.ndarray, mask: np.ndarray, special: set[str], k: int) -> list[list]:
    """The k positions of largest |attribution| as [token, score, position]: sign kept, repeated tokens apart."""
    triples = [(t, float(s), pos) for pos, (t, s, m) in enumerate(zip(tokens, scores, mask)) if m and t not in special]
    return [[t, round(s, 5), pos] for t, s, pos in sorted(triples, key=lambda p: -abs(p[1]))[:k]]


def explain_texts(data: "EvaluationData", indices: list[int], cfg: Any, out_dir: Path) -> dict[str, Any]:
    """LayerIntegratedGradients on the embeddings + KernelShap over tokens; top tokens per sample and a PNG."""
    batch = data.model_inputs("test", indices)
    ids, attention = batch["input_ids"], batch["attention_mask"]
    targets = data.outputs["test"].preds[indices]
    tokenizer = data.datamodule.tokenizer
    special_ids = torch.tensor(tokenizer.all_special_ids)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # baseline: every ordinary token → [PAD], special tokens ([CLS], [SEP]) and padding kept
    baseline = torch.where(torch.isin(ids, special_ids), ids, torch.full_like(ids, pad))
    net = data.net
    embeddings = net.encoder.get_input_embeddings()
    lig = LayerIntegratedGradients(lambda i, m: net(input_ids=i, attention_mask=m), embeddings)
    ig_attr = lig.attribute(ids, baselines=baseline, target=targets, additional_forward_args=(attention,),
                            n_steps=cfg.ig_steps).sum(-1)
    shap = KernelShap(lambda i, m: net(input_ids=i, attention_mask=m).softmax(-1))
    positions = torch.arange(ids.shape[1]).unsqueeze(0)
    shap_attr = torch.cat([shap.attribute(ids[j:j + 1], baselines=baseline[j:j + 1], target=int(targets[j]),
                                          additional_forward_args=(attention[j:j + 1],), feature_mask=positions,
                                          perturbations_per_eval=cfg.shap_samples,
                                          n_samples=cfg.shap_samples) for j in range(len(indices))])
    special = set(tokenizer.all_special_tokens)
    out = data.outputs["test"]
    samples = []
    for j, i in enumerate(indices):
        tokens = _tokens(data, ids[j])
        mask = attention[j].numpy().astype(bool)
        samples.append({"item_id": out.item_ids[i], "true": data.labels[int(out.labels[i])],
                        "pred": data.labels[int(out.preds[i])],
                        "text": data.datamodule.texts[data.datamodule.splits["test"][i]][:300],
                        "integrated_gradients": _top_tokens(tokens, ig_attr[j].detach().numpy(), mask, special, cfg.top_tokens),
                        "kernel_shap": _top_tokens(tokens, shap_attr[j].float().numpy(), mask, special, cfg.top_tokens)})
    path = _plot_token_attributions(samples, out_dir)
    return {"method": ["LayerIntegratedGradients(word embeddings)", "KernelShap(tokens)"], "samples": samples,
            "ig_steps": cfg.ig_steps, "shap_samples": cfg.shap_samples, "figures": {"attributions": path.name}}


POSITIVE, NEGATIVE = "tab:green", "tab:red"  # evidence for / against the predicted class


def token_attribution_figure(samples: list[dict[str, Any]]) -> Any:
    """Per sample and method, one bar per token position (repeated tokens apart), coloured by the sign."""
    fig, axes = new_figure(10, 2.2 * len(samples), len(samples), 2)
    axes = np.atleast_2d(axes)
    for row, sample in enumerate(samples):
        for col, key in enumerate(("integrated_gradients", "kernel_shap")):
            ax = axes[row, col]
            entries = sample[key][::-1]  # largest |attribution| on top
            scores = [e[1] for e in entries]
            # numeric bar positions: a categorical axis would merge two positions of the same token
            ax.barh(range(len(entries)), scores, color=[POSITIVE if v >= 0 else NEGATIVE for v in scores])
            ax.set_yticks(range(len(entries)),
                          [f"{e[0]} @{e[2]}" if len(e) > 2 else str(e[0]) for e in entries])
            ax.axvline(0.0, color="black", linewidth=0.6)
            ax.set_title(f"{key.replace('_', ' ')}: true {sample['true']} / pred {sample['pred']}", fontsize=8)
            ax.tick_params(labelsize=7)
    return fig


def _plot_token_attributions(samples: list[dict[str, Any]], out_dir: Path) -> Path:
    return save_png(token_attribution_figure(samples), out_dir / "explanations.png")


def explain(data: "EvaluationData", cfg: Any, out_dir: Path) -> dict[str, Any]:
    """Explain the first N test samples (spread across the split) with both Captum views."""
    n_test = len(data.outputs["test"].labels)
    count = min(cfg.samples, n_test)
    step = max(1, math.floor(n_test / max(count, 1)))
    indices = list(range(0, n_test, step))[:count]
    data.net.eval()
    if data.kind == "tabular":  # per feature column: permutation importance + Captum (evaluation/tabular.py)
        from evaluation.tabular import explain_tabular_classifier

        return explain_tabular_classifier(data, cfg)
    if data.kind == "image":
        return explain_images(data, indices, cfg, out_dir)
    return explain_texts(data, indices, cfg, out_dir)
