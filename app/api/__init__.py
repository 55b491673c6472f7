"""What every router shares: the dependencies in `deps.py`."""
