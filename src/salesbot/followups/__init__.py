"""Automated follow-ups: the playbook's `follow_ups` rules, scheduled, cancelled and sent by a cron job."""
