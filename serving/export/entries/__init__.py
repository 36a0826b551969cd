"""The `--handler` file of each archive: a top-level module in the model dir over `runtime.handlers`."""
