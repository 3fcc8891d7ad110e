"""``polyband report``: the operators' questions (SPEC S5) answered from a run's Redis.

``reader`` reads Redis into a ``model.RunData`` (plain data), ``answers`` computes the 14 answers
(pure), ``render`` prints them (rich) or as JSON, ``plots`` draws PNGs.
"""
