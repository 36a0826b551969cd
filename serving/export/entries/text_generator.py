"""TorchServe entry for language models: the archive's `--handler` file, over `runtime.handlers.text_generator`.

TorchServe instantiates the one class *defined* in this file; the code itself ships whole in `runtime/`.
"""
from runtime.handlers.text_generator import TextGeneratorHandler as _Handler


class TextGeneratorHandler(_Handler):
    """`runtime.handlers.text_generator.TextGeneratorHandler`, defined here for TorchServe's loader."""
