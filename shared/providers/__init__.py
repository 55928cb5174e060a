"""Provider API clients: thin adapters that build requests and map errors to billhook exceptions."""
