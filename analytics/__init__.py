"""Reference datasets and model performance pages."""
