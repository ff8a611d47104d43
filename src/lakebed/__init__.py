"""Lakebed: an open data & AI platform for card payments, from a laptop to a cluster."""

__version__ = "0.1.0"
