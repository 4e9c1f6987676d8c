"""The sales agent: PydanticAI agent, sales-stage tools, PII masking, model fallback chain."""
