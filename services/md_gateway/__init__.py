"""polyband md_gateway service."""
