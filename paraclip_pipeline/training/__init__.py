"""ParaCLIP fine-tuning of the text tower: losses, loop, checkpoints, torchrun entry point."""
