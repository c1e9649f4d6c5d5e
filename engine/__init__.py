"""invsync.engine."""
