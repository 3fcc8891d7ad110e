"""polyband scheduler service."""
