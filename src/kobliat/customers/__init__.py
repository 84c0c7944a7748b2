"""Customer context: identities on channels, find-or-create, profile updates."""
