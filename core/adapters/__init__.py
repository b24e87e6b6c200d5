"""Agent frameworks run under taskdeck as libraries (each an optional extra):

    langgraph   a compiled LangGraph graph: its run a task, each `interrupt(...)` a question
"""
