"""The fast paths for the stages' forwards (core/stages/), which run them as a second ``ops``.

- kernels.py: chunked masked softmax, row-blocked causal A·V, scores into pooled buffers;
- ops.py: the engine's ``ops`` for the stages' forwards (core/stages/ops.py): these kernels,
  the trainable Q/K/V shared between stages, derived and deferred intermediates;
- buffers.py: the pool of large CPU buffers (explicit ownership); malloc.py: ``tune_malloc``;
- cache.py: masks and weights kept between traces; lazy.py: derived intermediates.

core.trace picks a path in one place (``_forward``). Nothing here runs at import time:
``malloc.tune_malloc()`` is called by the app at start-up (main.py).
"""
