"""citystream.v1 protocol: the .proto files (the contract) and their generated Python stubs (`make protos`)."""
