"""The ids every vocabulary, model and search agree on: padding, start and end of a sequence;
and the name of a target-language token."""

import re

PAD_ID = 0  # fills rows up to the batch's length; masks are derived from it
BOS_ID = 1  # the decoder's first input
EOS_ID = 2  # ends every target and every output


def language_token(language: str) -> str:
  """The target-language token of a model trained in several directions, e.g. "es" -> "<2es>":
  the decoder reads it after BOS, before the output (LASER, Artetxe & Schwenk 2019, gives the
  decoder the target language; Johnson et al. 2017 use the same token name on the source side)."""
  return f"<2{language}>"


LANGUAGE_TOKEN = re.compile(r"<2[A-Za-z0-9_-]+>")  # what `language_token` makes
