"""Clients for the remote services: one module per service over one HTTP layer."""
