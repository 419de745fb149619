"""The fault suite: real workers, beats and servers attacked from outside (``-m faults``)."""
