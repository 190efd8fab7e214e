"""Multi-process ingest behind one ZeroMQ source (``zmq:...?workers=N``).

:mod:`.receiver` decodes producers' messages (in the source's thread, or in each
worker); :mod:`.pool` runs the :mod:`.router` and :mod:`.worker` processes and
applies their results, which travel in the one codec of :mod:`.results`;
:mod:`.sockets` holds what the processes' sockets share.
"""
