"""Data: TFDS builders (array_record), vocabularies and the grain input pipeline."""
