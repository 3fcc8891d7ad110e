"""user_feed: the authenticated user channel (our orders and trades) into per-token Redis streams."""
