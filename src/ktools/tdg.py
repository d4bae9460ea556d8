"""Old import path of the Training Data Generator entry point, kept for existing scripts:
`from ktools.tdg import QAGenerator` still works. New code imports
`ktools.compat.training_data_generator`."""

from ktools.compat.training_data_generator.generator import QAGenerator, TDGError, convert_tdg_template

__all__ = ["QAGenerator", "TDGError", "convert_tdg_template"]
