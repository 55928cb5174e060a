"""Local HTTP servers standing in for the providers at the internet edge."""
