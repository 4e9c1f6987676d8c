"""The WhatsApp-like chat simulator (`/simulator`) and `salesbot chat`: the console provider, end to end.

Both talk to the real product over HTTP: messages go in through `POST /webhooks/console` (inbox, debounce, worker
turn, agent, outbox), replies come back from the console provider's outbox stream. Mounted only while the
console provider is enabled (the default outside production).
"""
