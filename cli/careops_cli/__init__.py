"""The `careops` command line: run the embedded platform and drive it over gRPC."""
