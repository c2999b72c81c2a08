"""Analysis of run records: hypervolume, tables and figures."""
