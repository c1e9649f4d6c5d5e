"""invsync.bench: the benchmark harness (a tool apart from the product)."""
