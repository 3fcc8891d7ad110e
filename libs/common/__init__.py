"""Shared core of polyband: settings, Redis key schema, Lua scripts, clock, logging, journal."""
