"""rtpengine: the NG control protocol client (ng.py) and how the daemon is started (tools/stack.py)."""
