"""Rover selectors, one module per concern."""
