"""Training: the fusion model, the loop, calibration, the end-to-end run, the K-fold audit, inference."""
