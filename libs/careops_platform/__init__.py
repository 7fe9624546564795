"""Shared service platform: settings, logging, gRPC bootstrap, metrics, tracing and SQL."""
