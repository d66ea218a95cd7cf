"""Golden-suite evaluation harness for small tool-calling LLMs. Importing it never imports torch."""

__version__ = "0.1.0"
