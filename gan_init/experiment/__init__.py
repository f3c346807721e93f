"""The experiment: one run end to end (``pipeline``), many runs (``sweep``), the run folder they
write (``runs``), and what is read from it (``compare``, ``stats``, ``report``)."""
