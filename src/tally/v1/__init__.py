"""Generated code for the tally.v1 protos: DO NOT EDIT.

Everything in this folder is written by scripts/gen_protos.py from protos/tally/v1/*.proto.
Change the protos and run `python scripts/gen_protos.py` instead of editing these files.
"""
