"""The admin panel for managers (`/admin`, SQLAdmin): login, conversations with takeover, catalog, dashboard."""
