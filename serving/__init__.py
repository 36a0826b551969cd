"""Everything after training, split by where it runs: export/ (+ .mar packaging), torchserve/, gateway/,
registry/, monitoring/, scoring/ and the `python -m serving` command line (cli/, table in __main__.py)."""
