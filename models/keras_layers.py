"""Importing this module registers every custom Keras layer genretag models use.

Safe-mode loading only deserialises registered classes, never Python code
stored in the file, so the loader imports this first.
"""

from genretag.models import frontend, loudness, musicnn  # noqa: F401
