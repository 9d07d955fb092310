"""The fast paths, beside the stages' readable forwards (core/stages/).

- kernels.py: chunked masked softmax, row-blocked causal A·V, scores into pooled buffers;
- fast.py: the causal and multi-head forwards built from them, sharing the trainable Q/K/V;
- buffers.py: the pool of large CPU buffers (explicit ownership); malloc.py: ``tune_malloc``;
- cache.py: masks and weights kept between traces; lazy.py: derived intermediates.

core.trace picks a path in one place (``_forward``). Nothing here runs at import time:
``malloc.tune_malloc()`` is called by the app at start-up (main.py).
"""
