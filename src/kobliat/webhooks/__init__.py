"""Inbound webhook endpoints, one per channel."""
