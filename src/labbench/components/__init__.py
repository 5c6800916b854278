"""Factories the configs instantiate: activations, norms, init schemes, schedules, losses."""
