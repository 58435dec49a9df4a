"""Gin files for T5X training and inference of the three AudioLM stages.

Importable as ``audiolm_t5x.t5x_configs``; gin files ship as package data.
"""

import os

CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
