"""`taskdeck integrate`: write taskdeck's hooks into an agent's own settings, and take them out.

    command      the hook command we write, and how we recognise it again
    hooks        merging our handlers into `{"hooks": {EVENT: [group]}}` (pure)
    codex_trust  Codex's hook trust: keys, hashes, the config.toml entries
    codex_check  asking a Codex binary which hooks it will run (`hooks/list`)
    files        reading, backing up and atomically rewriting settings files
    plans        the changes per agent; run: the command itself
"""
