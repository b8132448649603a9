"""The report: its landing page (what this run shows, from the run's numbers), the figures and
the HTML helpers shared by the pages (stdlib and matplotlib only)."""
