"""invsync.adapters."""
