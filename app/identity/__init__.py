"""Confidential identity: sealed apart from the report at intake, released only with the
reporter's consent or on a supervisor's legal ground, and always by a second person."""
