"""One module per verb, each thin: parse nothing, call container.py, print the result."""
