"""Everything after training: export, packaging, handlers, a real TorchServe, and its command line."""
