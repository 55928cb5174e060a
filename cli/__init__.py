"""The `billhook` command line for ops. One module per command group."""
