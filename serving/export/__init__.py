"""Export a run: TorchScript + torch.export, parity against the eager net, metadata, and the versioned .mar (package.py)."""
