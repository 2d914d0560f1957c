"""notification-controller offline: nothing runs; its objects are only read by the checks (api.py)."""
