"""`taskdeck web`: the dashboard served to browsers, behind a token."""
