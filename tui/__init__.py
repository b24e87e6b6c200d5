"""taskdeck's terminal dashboard: the live task tree, inline answers and aborts."""
