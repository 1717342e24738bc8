"""mobileseg-zoo."""
