"""Knowledge: embeddings (fastembed BGE-M3 or offline), hybrid search, catalog and knowledge ingestion."""
