"""End to end: the real Claude Code and Codex binaries, offline against fake model servers."""
