"""TorchServe entry for tabular models: the archive's `--handler` file, over `runtime.handlers.tabular`.

TorchServe instantiates the one class *defined* in this file; the code itself ships whole in `runtime/`.
"""
from runtime.handlers.tabular import TabularHandler as _Handler


class TabularHandler(_Handler):
    """`runtime.handlers.tabular.TabularHandler`, defined here for TorchServe's loader."""
