"""Test helpers shared across tiers (importable as ``helpers``: ``tests/`` is on pytest's ``pythonpath``)."""
