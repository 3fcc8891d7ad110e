"""polyband signal_ingest service."""
