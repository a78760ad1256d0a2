"""The gRPC server: composition root, interceptors, validation and the servicers."""
