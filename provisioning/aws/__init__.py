"""Onramp's side of boto3: clients in a customer's account (accounts), the audit of every call (calls), AWS's
errors in words (errors) and its eventual consistency (settle)."""
