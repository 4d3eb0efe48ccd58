"""The ledger's pure model: money, accounts, vouchers and the posting arithmetic. Standard library only."""
