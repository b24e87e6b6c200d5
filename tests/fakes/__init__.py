"""Fake model servers on loopback that script what a model answers, for the real agent binaries."""
