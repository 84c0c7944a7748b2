"""Sending replies: the send queue, the provider clients and the sender loop."""
