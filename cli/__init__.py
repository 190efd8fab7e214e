"""The ``genretag`` command line: a thin click layer over training, models and daemon."""
