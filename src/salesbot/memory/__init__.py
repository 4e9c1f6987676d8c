"""Memory of returning customers: facts kept per customer across conversations, recalled by relevance (MMR)."""
