"""Prefect flows that wire the stages of the platform."""
