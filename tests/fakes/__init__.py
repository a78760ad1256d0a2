"""Local servers speaking the LLM providers' wire protocols (OpenAI chat completions and
embeddings, Anthropic messages), one per protocol, shared by the tests and the benchmarks.

They live beside the tests, their main users; the benchmarks import them from here (both run
from a checkout). So this package needs only the standard library and numpy: never pytest,
never the rest of tests/."""
