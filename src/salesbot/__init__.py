"""salesbot: a WhatsApp-first AI sales assistant."""
