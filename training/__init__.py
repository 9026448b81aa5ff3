"""Offline side: data, training, evaluation, precompute. Writes models through ``model_store``."""
