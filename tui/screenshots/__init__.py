"""Screenshots of the real dashboard over a scripted scene; never imported by the dashboard.

Run `python -m tui.screenshots [OUT_DIR]` (see `__main__`). `scene` is the scripted task
tree on a real in-process daemon, which the dashboard tests drive too.
"""
