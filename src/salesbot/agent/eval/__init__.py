"""Scripted sales conversations (YAML scenarios) run against a model, with a scorecard: `salesbot eval`."""
