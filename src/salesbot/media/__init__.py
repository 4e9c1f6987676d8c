"""Files customers send: downloaded by the worker before the agent runs, voice notes transcribed, kept in
`message_media` and shown to managers in the admin."""
