"""gRPC servicers: validate input, call the domain or the store, convert the result."""
