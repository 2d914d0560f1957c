"""What `validate` checks after rendering: schemas, then the policies of the registry (registry.py)."""
