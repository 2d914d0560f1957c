"""Parallel validate and the render cache: the same output as a serial, uncached run, only sooner."""
