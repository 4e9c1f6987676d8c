"""The operations REST API under `/api/v1` (Bearer `API_TOKEN`; OpenAPI at `/docs`)."""
