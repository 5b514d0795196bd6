"""Neural rungs (char-CNN, transformer features, fine-tuning) and calibration wrappers. Importing registers them."""

from models import char_cnn, features, finetune, mc_dropout, temperature  # noqa: F401
