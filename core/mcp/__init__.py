"""`taskdeck mcp`: an MCP server over stdio, so any MCP host asks its questions through taskdeck.

    tools       the tools as data: names, argument types and schemas, and how an answer,
                a timeout or an abort reads as a tool result (pure, no I/O, no SDK)
    session     the host session's task in the tree and its sub-tasks, through the client
                library only: questions asked and waited on, closed when nobody waits
    server      the MCP SDK's low-level server on stdio, calling the two above; the SDK
                is imported only here, when `taskdeck mcp` starts
"""
