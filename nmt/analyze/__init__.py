"""``nmt analyze``: which attention terms a trained model uses, measured on the model itself
(logit-variance attribution, attention entropies, test-time term removal, per-term heatmaps)."""
