"""Stories: copies, rewrites and updates of one report across outlets, grouped.

Pure code (no I/O): a signature per article (:func:`fingerprint`, stored beside the
article), the decision rule (:func:`compare`), the decision from candidates
(:func:`decide`, the same from memory or from SQL rows), the in-memory window
(:class:`StoryIndex`) and the "alert again?" check (:func:`material_change`).
See ``docs/matching.md``, section "Stories".
"""

from monitor.stories.change import MaterialChange, material_change
from monitor.stories.index import (
    DEFAULT_WINDOW,
    StoredArticle,
    StoryDecision,
    StoryIndex,
    band_keys,
    decide,
)
from monitor.stories.rule import Evidence, compare, text_similarity
from monitor.stories.signature import Signature, SignatureError, fingerprint

__all__ = [
    "DEFAULT_WINDOW",
    "Evidence",
    "MaterialChange",
    "Signature",
    "SignatureError",
    "StoredArticle",
    "StoryDecision",
    "StoryIndex",
    "band_keys",
    "compare",
    "decide",
    "fingerprint",
    "material_change",
    "text_similarity",
]
