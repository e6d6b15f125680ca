"""gRPC contracts (.proto, package citystream.v1) and their generated stubs (issue: dispatch)."""
