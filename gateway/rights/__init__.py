"""Subject rights (who received my data, erasure, rectification) and lawful requests."""
