"""nmt.selection: choosing the final model on the validation set (checkpoint and length penalty) and
scoring checkpoints over splits and length penalties."""
