"""Domain-free helpers shared by every package (never imports a domain)."""
