"""honcho-grpc: a memory and theory-of-mind service for AI agents, served over gRPC."""

__version__ = "0.1.0"
