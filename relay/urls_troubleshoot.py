"""Troubleshooter and test message."""

patterns: list = []
