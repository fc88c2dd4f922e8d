"""Helpers shared by the unit, integration, end-to-end and benchmark tests."""
