"""Factories for provider events, built from the providers' own published object shapes."""
