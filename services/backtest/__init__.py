"""The back-test: every polyband service and the paper venue in ONE process, stepped in lockstep by
the tape's clock in virtual time over a private Redis (``polyband backtest``)."""
