"""Conversations: the turn job, conversation state and its repository, the operations API."""
