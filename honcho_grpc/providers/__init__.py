"""Providers: the one place that talks to each embedding model and each LLM."""
