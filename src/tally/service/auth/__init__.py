"""Who calls: API keys, tokens, authentication, and the audit log of calls."""
