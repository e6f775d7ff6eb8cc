"""The Python SDK for internal services calling the gateway: one exception class per problem
code.
"""
