"""Background work: periodic jobs on PostgreSQL (procrastinate), safe with any number of
workers, and the `cleanwindow worker` and `cleanwindow jobs` commands."""
