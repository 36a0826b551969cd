"""The code that runs inside a TorchServe worker, shipped whole in every `.mar` as this one package.

Preprocessing, request decoding and answer formatting, prediction logging and PII redaction; training,
serving and batch scoring import the same modules, so a served answer and a batch score are computed by
one piece of code. Imports are relative inside the package and reach only the standard library, torch,
numpy, PIL and tokenizers (`lint-imports` checks it): a stock TorchServe host can run it.
"""
