"""TorchServe handler classes (one class per file), shipped in every .mar inside the `runtime/` package."""
