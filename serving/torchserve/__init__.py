"""One real TorchServe instance: config, lifecycle (start/READY/stop), model store, HTTP + gRPC clients, in-process worker."""
