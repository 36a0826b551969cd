"""Plain nn.Modules: exportable, no Lightning, no Hydra."""
