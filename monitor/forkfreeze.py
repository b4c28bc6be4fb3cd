"""Imported last by the worker pool's fork server: freezes what the server imported.

``gc.freeze()`` moves every object alive now into a generation the collector never visits.
Without it, the first full collection in each forked worker walks (and so writes to) every
object the fork server imported: trafilatura, lxml, feedparser, numpy. Copy-on-write
then gives each worker a private copy of all those pages, ~70 MB per worker, instead of
sharing the fork server's.
"""

import gc

gc.freeze()
