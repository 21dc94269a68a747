"""The commands, one module each: ``fit`` (``minc-lightning``, also ``python -m minc_lightning``),
``evaluate`` (``minc-lightning-eval``), ``embed``, ``export`` and ``prepare``. They read
checkpoints through ``minc_lightning.loading`` and score through ``minc_lightning.scoring``."""
