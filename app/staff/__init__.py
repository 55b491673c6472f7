"""Staff accounts: users, roles, password login and bearer tokens."""
