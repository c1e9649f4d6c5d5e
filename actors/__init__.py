"""invsync.actors."""
