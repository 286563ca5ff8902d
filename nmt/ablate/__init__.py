"""Ablation studies (``nmt ablate``): settings x seeds of one experiment, result tables, bootstrap, plot."""
