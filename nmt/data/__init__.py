"""nmt.data: corpus -> subwords -> binarized arrays -> batches.

Modules: ``config`` (DataConfig), ``errors`` (DataError), ``text`` (reading/validating parallel files),
``sources`` (local files, Hugging Face datasets, sacrebleu test sets), ``filters``, ``subwords``
(SentencePiece ``Vocab``), ``binarized`` (memory-mapped cache), ``prepare`` (``prepare(cfg)``),
``batching`` (token-budget samplers), ``batch`` (``Batch``), ``datamodule`` (``NMTDataModule``).
Import from the submodules; this package imports nothing heavy on its own.
"""
