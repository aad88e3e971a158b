"""The switch daemon: bridges and ports from the database, and control commands."""
