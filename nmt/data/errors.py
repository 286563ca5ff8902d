"""The one exception type of the data pipeline."""

from __future__ import annotations


class DataError(ValueError):
    """Bad or missing data, or a data option that cannot work; the message names the file/line/option."""
