"""The command line: one table of verbs and options, two parsers built from it."""
