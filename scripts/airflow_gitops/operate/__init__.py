"""Operating live clusters, apart from the offline engine: rollback and downgrade plans, eks up/down, the
comparison with `flux build`, push-to-live latencies."""
