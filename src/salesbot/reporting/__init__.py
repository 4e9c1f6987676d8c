"""Read models for managers and operations: conversation lists and transcripts, exports and dashboard numbers.

The admin panel and the REST API both read through here, so a filter or a statistic means the same thing in
both places. Nothing in this package writes (writers use it to read, and lock, what they change).
"""
