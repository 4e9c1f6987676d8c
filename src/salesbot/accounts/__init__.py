"""Manager accounts: users, passwords, per-user API tokens."""
