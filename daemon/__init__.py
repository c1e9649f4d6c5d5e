"""invsync.daemon."""
