"""polyband venue_sim service."""
