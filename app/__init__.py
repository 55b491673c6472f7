"""Clean Window: anonymous, end-to-end encrypted corruption reporting."""
