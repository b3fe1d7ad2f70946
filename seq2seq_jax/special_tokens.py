"""The ids every vocabulary, model and search agree on: padding, start and end of a sequence."""

PAD_ID = 0  # fills rows up to the batch's length; masks are derived from it
BOS_ID = 1  # the decoder's first input
EOS_ID = 2  # ends every target and every output
