"""Behaviour analysis of reward-model traces, notebook 07 (PersRM-R1 §5.2–5.3): :mod:`.classifiers` count
cognitive behaviours in one trace, :mod:`.criteria` reads the stylistic criteria a trace names, :mod:`.tallies`
sums over many traces, :mod:`.plots` draws. The run files are read by their stage owners' readers, not here."""
