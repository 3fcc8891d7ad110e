"""alerter: webhook alerts (generic JSON, Discord, Telegram) on halt, failed token, daily-loss limit,
feed down and service down, with their recoveries, rate-limited."""
