"""Every bound a rule set is held to when it is loaded or evaluated. Units are the last word of each name."""

from tally.domain import limits as domain_limits

FILE_SIZE_BYTES_MAX = 1_048_576
RULES_MAX = 256
FLOWS_MAX = 64
NAMES_PER_FLOW_MAX = 64  # values, parties and tags one flow declares
TEMPLATES_MAX = 512
PARAMS_MAX = 256
LETS_PER_RULE_MAX = 32
REQUIRES_PER_RULE_MAX = 16
VOUCHERS_PER_RULE_MAX = 8
# A voucher's lines after split lines are expanded, so a built voucher can never break the domain bound.
LINES_PER_VOUCHER_MAX = domain_limits.LINES_PER_VOUCHER_MAX
SHARES_MAX = 32  # entries of a flow's share table
EXPRESSION_LENGTH_MAX = 512  # characters
EXPRESSION_DEPTH_MAX = 32  # nested parentheses, calls and unary operators
ID_LENGTH_MAX = 64  # rule ids, voucher names, the version string
REASON_LENGTH_MAX = 64
MESSAGE_LENGTH_MAX = 256
