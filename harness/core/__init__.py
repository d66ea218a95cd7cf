"""The harness's engine and the task protocol it drives (harness.tasks holds the tasks)."""
