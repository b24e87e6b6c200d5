"""Widgets of the taskdeck dashboard."""
