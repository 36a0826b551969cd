"""Canary comparison: champion vs candidate from the gateway's access log and the prediction logs."""
