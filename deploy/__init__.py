"""Deployment, build time only (never packaged): the resources stack Chalice cannot create,
the policies, and the deploy/destroy/package commands (commands.py)."""
