"""One module per embedder; `salesbot.knowledge.embeddings` chooses one from the settings."""
