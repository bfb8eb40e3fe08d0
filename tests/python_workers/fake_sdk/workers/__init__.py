"""Stands in for Cloudflare's `workers` package (workers-runtime-sdk) in activation tests."""

FAKE_SDK = True
