"""Honcho's v3 HTTP API (as the official honcho-ai and @honcho-ai/sdk call it): another face
over the same domain functions the gRPC servicers call. No SQL and no rules here: each route
parses, validates with the shared Checker, calls the domain and shapes the JSON."""
