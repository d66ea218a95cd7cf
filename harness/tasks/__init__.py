"""The tasks the engine evaluates (harness.core.task.Task): tool calls, and workout programs."""
