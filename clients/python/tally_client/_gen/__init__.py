"""Generated code for tally-client: DO NOT EDIT. Written by scripts/gen_client_protos.py."""
