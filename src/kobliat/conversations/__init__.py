"""Conversation context: direct, multi and group conversations, participants and lifecycle."""
