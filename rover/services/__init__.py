"""Rover services, one module per concern."""
