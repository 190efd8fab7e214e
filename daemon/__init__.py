"""The long-running multi-stream tagging service (``genretag serve``)."""
