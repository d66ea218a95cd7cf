"""The fine-tuning data set: hand-written seeds, a template generator, converters, validation, split."""
