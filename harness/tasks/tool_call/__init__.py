"""The tool-call task: cases, prompt, parser, matchers, scoring, metrics and summary (harness.tasks.tool_call.task
is what the engine drives)."""
