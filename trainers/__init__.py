"""Everything that turns a network into a trained model: nets, the LightningModule, callbacks, runs."""
