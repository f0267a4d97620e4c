"""Reference datasets and model performance pages (issue 5 fills this in)."""
