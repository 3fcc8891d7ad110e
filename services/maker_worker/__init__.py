"""polyband maker_worker service."""
