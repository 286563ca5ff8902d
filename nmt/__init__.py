"""factor-nmt: neural machine translation for studying which parts of attention matter."""

__version__ = "0.1.0"
