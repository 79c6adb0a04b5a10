"""Segment lifetime: last close, dead peers, handles in transit, SIGKILL chaos, the leak check."""
