"""Every bound the domain enforces, in one place. Units are the last word of each name."""

AMOUNT_MAX = 2**63 - 1  # amounts and balances are stored as signed 64-bit integers
BALANCE_MIN = -(2**63)
# Half the int64 range: available (current - locked + credit_limit) stays within int64 until the balance
# itself passes the other half. A limit of 2^63-1 made every credit overflow available, so none was accepted.
CREDIT_LIMIT_MAX = 2**62

LINES_PER_VOUCHER_MAX = 64
METADATA_ENTRIES_MAX = 32
METADATA_KEY_LENGTH_MAX = 64
METADATA_VALUE_LENGTH_MAX = 512
METADATA_SIZE_BYTES_MAX = 4096
MEMO_LENGTH_MAX = 512
REQUEST_ID_LENGTH_MAX = 128
ACCOUNT_CODE_LENGTH_MAX = 128
ACCOUNT_NAME_LENGTH_MAX = 256
TENANT_ID_LENGTH_MAX = 64
ACCOUNT_DEPTH_MAX = 8  # parent chain length, so hierarchies stay cheap to walk
ACCOUNT_CHILDREN_MAX = 1000  # children of one parent
SUBTREE_ACCOUNTS_MAX = 10_000  # descendants one roll-up or subtree trial balance reads, in all
# Accounts (the root included) one subtree statement merges: each page reads a range of each account's entries.
SUBTREE_ENTRIES_ACCOUNTS_MAX = 100

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 500
BALANCES_PER_READ_MAX = 1000  # accounts one BatchGetBalances reads in its snapshot
