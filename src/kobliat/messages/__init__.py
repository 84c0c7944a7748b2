"""Message context: inbound and outbound messages, stored exactly once, and their statuses."""
