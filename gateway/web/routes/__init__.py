"""The JSON API's handlers: parse, call the flow, render. Shared helpers live in routes/api.py."""
