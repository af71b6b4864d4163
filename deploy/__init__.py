"""Deployment: the resources stack Chalice cannot create, and the deploy/destroy/package commands."""
