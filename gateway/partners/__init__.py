"""Partners: the partner files, their keys, their standing (agreements, suspensions) and their
diffs.
"""
