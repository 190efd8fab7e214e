"""Audio sources of the daemon: mic, file, url (ffmpeg), zmq.  See :mod:`.base` for the contract."""
