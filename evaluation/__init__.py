"""Evaluation of a trained run: report, calibration, fairness, explanations, baselines, model card."""
