"""Payment links: a Stripe Checkout Session per accepted quote, sent in the chat; the webhook that reports it paid."""
