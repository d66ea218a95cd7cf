"""Training: data (build, validate, split, audit) and the LoRA trainer. Reuses the harness's prompt, parser and schemas."""
