"""Training: the loop, loss, learning-rate schedule, distributed helpers, RNG state, validation, run set-up."""
