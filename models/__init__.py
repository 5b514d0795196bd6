"""Neural rungs (char-CNN, transformer features, fine-tuning, calibration wrappers). Importing registers them."""
