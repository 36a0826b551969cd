"""The canary gateway: a real nginx in front of TorchServe (TLS, API keys, rate limits, traffic split)."""
