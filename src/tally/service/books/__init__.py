"""The books: the ledger audit (balances proven from the journal), its API, and the hash-chain check."""
