"""invsync.metrics."""
