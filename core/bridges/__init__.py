"""Bridges: agents from outside that report to the deck through their own hook mechanisms.

    claude      `taskdeck hook claude`: Claude Code's hooks as a task tree and its
                permission questions as prompts
"""
