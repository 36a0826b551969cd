"""TorchServe handlers (one class per file) and the helper modules shipped beside them in every .mar."""
