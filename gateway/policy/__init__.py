"""The pure model of a disclosure: the request, the facts about its subject, decide() and
minimize(). No I/O.
"""
