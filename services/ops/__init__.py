"""polyband ops service."""
