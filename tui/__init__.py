"""taskdeck's dashboard: a Textual app over the client library."""
