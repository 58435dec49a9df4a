"""Prints the gin search path for T5X: ``python3 -m audiolm_t5x.t5x_configs``."""

from audiolm_t5x.t5x_configs import CONFIG_DIR

if __name__ == "__main__":
  print(CONFIG_DIR)
