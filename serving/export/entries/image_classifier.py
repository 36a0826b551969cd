"""TorchServe entry for image classifiers: the archive's `--handler` file, over `runtime.handlers`.

TorchServe imports the handler file as a top-level module of the model dir and instantiates the one
class *defined* in it (ts/model_loader.py filters `list_classes_from_module` on `__module__`), so this
file defines a subclass and nothing else; the code itself ships whole in the archive's `runtime/`.
"""
from runtime.handlers.image_classifier import ImageClassifierHandler as _Handler


class ImageClassifierHandler(_Handler):
    """`runtime.handlers.image_classifier.ImageClassifierHandler`, defined here for TorchServe's loader."""
